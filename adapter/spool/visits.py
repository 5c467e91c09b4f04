"""HIS visit number -> the centre's mdtrt_id, learnt from a registration's reply (2401, 2201),
and bound into the later messages of the visit when they are sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select

from adapter.state import schema
from adapter.state.store import StateStore, utcnow

_PREFIX = "visit:"
#: built once: looked up for every message sent
_MDTRT_ID = select(schema.visit.c.mdtrt_id).where(schema.visit.c.his_key == bindparam("his_key"))


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
    if not group_key.startswith(_PREFIX):
        return payload
    his_key = group_key[len(_PREFIX):]
    with store.begin() as conn:
        mdtrt_id = conn.execute(_MDTRT_ID, {"his_key": his_key}).scalar()
    if mdtrt_id is None:
        return payload
    bound: dict[str, Any] = _replace_value(payload, "mdtrt_id", his_key, str(mdtrt_id))
    return bound


def _replace_value(node: Any, key: str, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: (new if k == key and v == old else _replace_value(v, key, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_value(item, key, old, new) for item in node]
    return node
