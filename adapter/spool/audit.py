"""The audit log of the spool: every action a person takes by hand (retry, recheck, resolve,
park, purge) is one row of ``audit_log`` with who (the OS user), when (UTC), on what, why and
what it did, and one line on the ``adapter.audit`` logger.

A person's action is written in the same transaction as what it changes wherever the change
is made here (:mod:`adapter.spool.manual`), so the spool is never changed by hand without its
row; the actions carried out elsewhere (``spool recheck``, ``spool resolve``) write theirs
right after.
"""

from __future__ import annotations

import getpass
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, insert, select, update

from adapter.state import schema
from adapter.state.store import StateStore, utcnow

audit_logger = logging.getLogger("adapter.audit")
_table = schema.audit_log
#: ``message 12``, ``records 3, 4, 5``: the ids a target names
_TARGET = re.compile(r"\b(message|record)s? (\d+(?:, \d+)*)")


class Action(StrEnum):
    RETRY = "retry"
    RECHECK = "recheck"
    RESOLVE = "resolve"
    PARK = "park"
    PURGE = "purge"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    #: naive UTC, as every time in the state store
    at: datetime
    who: str
    action: str
    target: str
    reason: str
    result: str

    def names(self, kind: str, target_id: int) -> bool:
        """Whether the entry's target names ``message`` or ``record`` ``target_id``."""
        return any(found.group(1) == kind and str(target_id) in found.group(2).split(", ")
                   for found in _TARGET.finditer(self.target))


def current_user() -> str:
    """The OS user running the command (what the audit log calls "who")."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's anonymous user)
        return "unknown"


def ids_text(kind: str, ids: Iterable[int]) -> str:
    """``message 12``, ``records 3, 4, 5``: a target as the log writes (and reads) it."""
    listed = sorted(set(ids))
    return f"{kind}{'s' if len(listed) != 1 else ''} " + ", ".join(map(str, listed))


def write(conn: Connection, action: Action, target: str, *, reason: str = "", result: str = "",
          who: str | None = None) -> int:
    """One row of the audit log, inside the caller's transaction (with the change it records).
    Returns its id, for :func:`finish`."""
    who = who or current_user()
    entry_id = conn.execute(
        insert(_table).values(at=utcnow(), who=who[:64], action=action.value, target=target, reason=reason,
                              result=result).returning(_table.c.id)
    ).scalar_one()
    audit_logger.warning("spool %s %s by %s%s%s", action.value, target, who, f": {result}" if result else "",
                         f" (reason: {reason})" if reason else "",
                         extra={"action": f"spool_{action.value}", "user": who, "target": target})
    return int(entry_id)


def finish(conn: Connection, entry_id: int, result: str) -> None:
    """What a long action (a purge in batches) did in the end."""
    conn.execute(update(_table).where(_table.c.id == entry_id).values(result=result))


def record(store: StateStore, action: Action, target: str, *, reason: str = "", result: str = "",
           who: str | None = None) -> int:
    """:func:`write` in a transaction of its own, after an action carried out elsewhere."""
    with store.begin() as conn:
        return write(conn, action, target, reason=reason, result=result, who=who)


def entries(store: StateStore, since: datetime | None = None, limit: int | None = None) -> list[AuditEntry]:
    """The log oldest first (from ``since``, naive UTC; the newest ``limit`` when given)."""
    query = select(_table)
    if since is not None:
        query = query.where(_table.c.at >= since)
    query = query.order_by(_table.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.begin() as conn:
        rows = conn.execute(query).all()
    return [AuditEntry(row.id, row.at, row.who, row.action, row.target, row.reason or "", row.result or "")
            for row in reversed(rows)]


def entries_naming(store: StateStore, kind: str, target_id: int) -> list[AuditEntry]:
    """The entries whose target names message or record ``target_id`` (the log is a person's
    actions: small enough to read whole)."""
    with store.begin() as conn:
        rows = conn.execute(select(_table).where(_table.c.target.like(f"%{kind}%")).order_by(_table.c.id)).all()
    found = [AuditEntry(row.id, row.at, row.who, row.action, row.target, row.reason or "", row.result or "")
             for row in rows]
    return [entry for entry in found if entry.names(kind, target_id)]
