"""msgid: institution code (12) + yyyyMMddHHmmss (14) + a 4-digit sequence = 30 characters.

Random suffixes collide and the platform's handling of a repeated msgid is undocumented, so
the sequence is a per-second counter kept in the state database and never reused: a restart
continues where it stopped, and if the clock steps back the counter keeps counting from the
last second it used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, select, update

from adapter.state import schema

_STAMP = "%Y%m%d%H%M%S"
_MAX_SEQ = 9999
_counter = schema.msgid_counter
# Built once: a msgid is taken for every request, and building these each time cost more than
# running them.
_READ = (select(_counter.c.stamp, _counter.c.seq).where(_counter.c.fixmedins_code == bindparam("code"))
         .with_for_update())
_WRITE = (update(_counter).where(_counter.c.fixmedins_code == bindparam("code"))
          .values(stamp=bindparam("stamp"), seq=bindparam("seq")))


def allocate_msgid(
    conn: Connection,
    fixmedins_code: str,
    now: Callable[[], datetime] = datetime.now,
) -> str:
    """Take the next msgid inside the caller's transaction (commit it before sending)."""
    if len(fixmedins_code) != 12:
        raise ValueError(f"fixmedins_code {fixmedins_code!r} must be 12 characters for a msgid")
    current = now().strftime(_STAMP)
    row = conn.execute(_READ, {"code": fixmedins_code}).first()
    if row is None:
        stamp, seq = current, 1
        conn.execute(insert(_counter).values(fixmedins_code=fixmedins_code, stamp=stamp, seq=seq))
        return fixmedins_code + stamp + f"{seq:04d}"
    if current > row.stamp:
        stamp, seq = current, 1
    elif row.seq < _MAX_SEQ:
        stamp, seq = row.stamp, row.seq + 1
    else:
        # 9999 ids used in this second (or the clock went back): borrow the next second.
        stamp = (datetime.strptime(row.stamp, _STAMP) + timedelta(seconds=1)).strftime(_STAMP)
        seq = 1
        if stamp > current:
            # Do not run ahead of the wall clock by more than needed: wait for it.
            wait = (datetime.strptime(stamp, _STAMP) - now()).total_seconds()
            if 0 < wait <= 1.0:
                time.sleep(wait)
    conn.execute(_WRITE, {"code": fixmedins_code, "stamp": stamp, "seq": seq})
    return fixmedins_code + stamp + f"{seq:04d}"
