"""HIS visit number -> the centre's mdtrt_id, learnt from a registration's reply (2401, 2201),
and bound into the later messages of the visit when they are sent."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, insert, select

from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow

_PREFIX = "visit:"


def store_visit(conn: Any, group_key: str, mdtrt_id: str, msgid: str) -> None:
    """Remember the centre's mdtrt_id for the HIS visit of ``group_key``, inside the caller's
    transaction (the ack that learnt it: a registration is never acked without its id)."""
    his_key = group_key.split(":", 1)[1]
    conn.execute(schema.visit.delete().where(schema.visit.c.his_key == his_key))
    conn.execute(
        insert(schema.visit).values(his_key=his_key, mdtrt_id=mdtrt_id, registered_by=msgid, registered_at=utcnow())
    )


def registered_elsewhere(store: StateStore, group_key: str, mdtrt_id: str) -> str | None:
    """The HIS visit another registration already got ``mdtrt_id`` for, if any: the centre
    issues each mdtrt_id once, so an answer naming it again answered another request."""
    his_key = group_key.split(":", 1)[1]
    with store.begin() as conn:
        other = conn.execute(
            select(schema.visit.c.his_key).where(schema.visit.c.mdtrt_id == mdtrt_id, schema.visit.c.his_key != his_key)
        ).scalar()
    return None if other is None else str(other)


def bind_visit(store: StateStore, group_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Replace the HIS visit number by the centre's mdtrt_id, where the adapter registered it."""
    return bind_visits(store, [(group_key, payload)])[0]


def bind_visits(store: StateStore, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """:func:`bind_visit` of several messages, given as (group key, payload): their visits read in
    one query (a claimed batch's, one read for the batch instead of one a message). A visit's
    mdtrt_id is learnt from the ack of its registration, which went before any later message
    of the visit could be claimed, so binding at the claim is binding at the send."""
    his_keys = sorted({group_key[len(_PREFIX):] for group_key, _ in messages if group_key.startswith(_PREFIX)})
    mdtrt_ids: dict[str, str] = {}
    if his_keys:
        with store.begin() as conn:
            mdtrt_ids = registered_mdtrt_ids(conn, his_keys)
    bound = []
    for group_key, payload in messages:
        his_key = group_key[len(_PREFIX):]
        mdtrt_id = mdtrt_ids.get(his_key) if group_key.startswith(_PREFIX) else None
        bound.append(payload if mdtrt_id is None else _replace_value(payload, "mdtrt_id", his_key, mdtrt_id))
    return bound


def registered_mdtrt_ids(conn: Connection, his_keys: Sequence[str]) -> dict[str, str]:
    """HIS visit number -> the centre's mdtrt_id, for those of ``his_keys`` the adapter registered
    (inside the caller's transaction), in IN lists short enough for every database."""
    found: dict[str, str] = {}
    for chunk in in_chunks(his_keys):
        sql, names = _visits_of(conn.dialect, len(chunk))
        found.update(conn.exec_driver_sql(sql, tuple(chunk[int(n[1:])] for n in names) if names is not None
                                          else {f"k{i}": key for i, key in enumerate(chunk)}).all())
    return found


@functools.lru_cache(maxsize=64)
def _visits_of(dialect: Dialect, count: int) -> tuple[str, tuple[str, ...] | None]:
    """The visits of ``count`` HIS visit numbers: the statement's SQL for the dialect (parameters
    k0, k1, ...), compiled once for each count, and the order of its parameters where the
    dialect's are positional (None: by name). Run with the driver's own parameters, it costs no
    statement made, compiled or expanded for every look-up (SQLAlchemy's expanding IN rendered
    a month's million keys one by one)."""
    statement = (select(schema.visit.c.his_key, schema.visit.c.mdtrt_id)
                 .where(schema.visit.c.his_key.in_([bindparam(f"k{i}") for i in range(count)])))
    compiled = statement.compile(dialect=dialect)
    return compiled.string, (tuple(compiled.positiontup or ()) if compiled.positional else None)


def _replace_value(node: Any, key: str, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: (new if k == key and v == old else _replace_value(v, key, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_value(item, key, old, new) for item in node]
    return node
