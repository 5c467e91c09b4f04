"""Re-sealing every stored value with the current key (``yibao-adapter db rekey``): after a key
rotation, so the old key files can go; after sealing was switched on, so the rows written
before it are sealed too; with no ``key_file`` (old keys only), to store everything plain again.

It runs in batches, one transaction each, and can be stopped and run again: a value already
sealed with the current key is left alone. A row the daemon changes meanwhile is not
overwritten (each write is conditional on the value read), and the daemon seals what it
writes with the same configuration anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Table, Text, bindparam, select, type_coerce, update

from adapter.state import schema
from adapter.state.sealing import Keyring, Sealed, sealed_key_id
from adapter.state.store import StateStore

_BATCH = 500


@dataclass(frozen=True)
class ColumnRekey:
    """What :func:`rekey` did to one sealed column."""

    column: str
    #: values written again (sealed with the current key, or plain when there is none)
    rewritten: int
    #: values already as the current configuration writes them
    unchanged: int


def sealed_columns() -> list[tuple[Table, Column[str]]]:
    """Every column of the state database whose type is :class:`Sealed`."""
    return [(table, column) for table in schema.metadata.sorted_tables for column in table.columns
            if isinstance(column.type, Sealed)]


def rekey(store: StateStore, keyring: Keyring, batch: int = _BATCH) -> list[ColumnRekey]:
    """Write every sealed column's values as ``keyring`` writes them; see the module docstring."""
    return [_rekey_column(store, keyring, table, column, batch) for table, column in sealed_columns()]


def _rekey_column(store: StateStore, keyring: Keyring, table: Table, column: Column[str],
                  batch: int) -> ColumnRekey:
    assert isinstance(column.type, Sealed)
    name = column.type.column
    key = table.c.id
    stored = type_coerce(column, Text)  # the text as stored, not unsealed
    write = (
        update(table)
        .where(key == bindparam("b_id"), stored == bindparam("b_old", type_=Text))
        .values({column.name: bindparam("b_new", type_=Text)})
    )
    rewritten = unchanged = 0
    last = 0
    while True:
        with store.begin() as conn:
            rows = conn.execute(
                select(key, stored.label("stored")).where(key > last).order_by(key).limit(batch)
            ).all()
            if not rows:
                break
            last = rows[-1].id
            changes = []
            for row in rows:
                if row.stored is None:
                    continue
                if sealed_key_id(row.stored) == keyring.current_id:
                    unchanged += 1
                    continue
                fresh = keyring.seal(keyring.unseal(row.stored, name), name)
                changes.append({"b_id": row.id, "b_old": row.stored, "b_new": fresh})
            if changes:
                conn.execute(write, changes)
            rewritten += len(changes)
    return ColumnRekey(name, rewritten, unchanged)
