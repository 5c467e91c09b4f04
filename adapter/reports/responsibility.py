"""Who answers for a line at stake, as the HIS names them: the doctor who ordered it (开单医生,
``bilg_dr_codg``/``bilg_dr_name``), the department that billed it (开单科室, ``bilg_dept_*``)
and, where the HIS gives it, the one that carried it out (受单科室, ``acord_dept_*``), and the
operator who entered the charge (经办人, ``opter``/``opter_name``); and the findings or
differences grouped by each of them with the money at stake. Policy has the responsible
doctor, nurse or operator bear a rejected amount, so a report that names no one leaves the
hospital to find them line by line.

Every one of these columns is optional: a HIS query without them still works, and its lines
are grouped under "not supplied by the HIS"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapter.plugin.transactions import TransactionSpec
from adapter.reports.layout import Coded, Column, Table

#: what a report can be grouped by (``--by``) -> (Chinese, English) of the party
PARTIES: dict[str, tuple[str, str]] = {
    "doctor": ("医生", "Doctor"), "department": ("科室", "Department"), "operator": ("经办人", "Operator"),
}
#: the label of a party the HIS did not name
UNKNOWN = "HIS 未提供 not supplied by the HIS"

#: a fee line's columns (the national field names, read through the transaction's
#: ``his_columns`` where its HIS query names them otherwise: 2301 his_doctor_code...)
FEE_LINE_COLUMNS: dict[str, tuple[str, str]] = {
    "doctor": ("bilg_dr_codg", "bilg_dr_name"),
    "department": ("bilg_dept_codg", "bilg_dept_name"),
    "executing": ("acord_dept_codg", "acord_dept_name"),
    "operator": ("opter", "opter_name"),
}
#: a settlement's optional columns in ``[his] settlement_query``: the stay's 主诊医师 and
#: 出院科室 (as 4101 and 2402 name them) and the operator who settled it at the counter
SETTLEMENT_COLUMNS: dict[str, tuple[str, str]] = {
    "doctor": ("chfpdr_code", "chfpdr_name"),
    "department": ("dscg_dept_codg", "dscg_dept_name"),
    "operator": ("opter", "opter_name"),
}


@dataclass(frozen=True)
class Party:
    """A doctor, department or operator as the HIS names it: its code, its name, or both."""

    code: str = ""
    name: str = ""

    @property
    def key(self) -> str:
        """What groups it: the code where the HIS gives one (names repeat), else the name."""
        return self.code or self.name

    def coded(self, unknown: str = UNKNOWN) -> Coded:
        """Its code with its name as the label; ``unknown`` where the HIS named neither."""
        if not self.key:
            return Coded("", unknown)
        return Coded(self.code, self.name) if self.code else Coded("", self.name)


NOBODY = Party()


@dataclass(frozen=True)
class Responsible:
    """The parties of one line (or one settlement)."""

    doctor: Party = NOBODY
    department: Party = NOBODY
    #: 受单科室: the department that carried the order out, where the HIS names it
    executing: Party = NOBODY
    operator: Party = NOBODY

    def party(self, by: str) -> Party:
        parties: dict[str, Party] = {"doctor": self.doctor, "department": self.department,
                                     "executing": self.executing, "operator": self.operator}
        return parties[by]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def from_columns(row: Mapping[str, Any], columns: Mapping[str, tuple[str, str]],
                 rename: Mapping[str, str] | None = None) -> Responsible:
    """The parties named by ``row``'s ``columns`` (role -> (code column, name column));
    ``rename`` gives the column a national field is read from (a transaction's his_columns),
    the national name itself being tried next."""
    names = rename or {}

    def value(national: str) -> str:
        return _text(row.get(names.get(national, national))) or _text(row.get(national))

    parties = {role: Party(value(code), value(name)) for role, (code, name) in columns.items()}
    return Responsible(**parties)


def of_fee_line(spec: TransactionSpec | None, raw: Mapping[str, Any], feedetl_sn: str) -> Responsible | None:
    """The parties of the fee line ``feedetl_sn`` of a record as the HIS gave it (``raw``: its
    row, whose lines are the row itself for 2301 or a child list for 2204); None when the
    record has no such line."""
    entry = _entry(spec, raw, feedetl_sn)
    if entry is None:
        return None
    return from_columns(entry, FEE_LINE_COLUMNS, spec.his_columns if spec is not None else None)


def _entry(spec: TransactionSpec | None, raw: Mapping[str, Any], feedetl_sn: str) -> Mapping[str, Any] | None:
    where = spec.fee_lines if spec is not None else ""
    if where == "." or (not where and _text(raw.get("feedetl_sn")) == feedetl_sn):
        return raw
    lists = [raw.get(where)] if where else [v for v in raw.values() if isinstance(v, list)]
    for entries in lists:
        for entry in entries or ():
            if isinstance(entry, Mapping) and _text(entry.get("feedetl_sn")) == feedetl_sn:
                return entry
    return None


@dataclass
class Share:
    """One party's part: how many findings (or differences), how many stopped, the money at
    stake, and by which rule (or kind of difference)."""

    party: Party
    count: int = 0
    blocked: int = 0
    amount: Decimal = Decimal(0)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, amount: Decimal, kind: str, blocked: bool = False) -> None:
        self.count += 1
        self.blocked += blocked
        self.amount += amount
        self.kinds[kind] += 1


def shares(items: Iterable[tuple[Party, Decimal, str, bool]]) -> list[Share]:
    """(party, amount, rule or kind, stopped) per item -> one share per party, the largest
    amount first, the lines no party was named for last."""
    groups: dict[str, Share] = {}
    for party, amount, kind, blocked in items:
        share = groups.setdefault(party.key, Share(party))
        if party.name and not share.party.name:  # a line that names it, where the first did not
            share.party = party
        share.add(amount, kind, blocked)
    return sorted(groups.values(), key=lambda s: (not s.party.key, -s.amount, s.party.key))


def kinds_text(kinds: Counter[str], label: Callable[[str], str]) -> str:
    """"重复收费 duplicate-charge ×2 · 挂床住院 bed-hanging ×1", the most frequent first."""
    return " · ".join(f"{label(kind)} ×{count}".strip() for kind, count in
                      sorted(kinds.items(), key=lambda item: (-item[1], item[0])))


def share_of(amount: Decimal, total: Decimal) -> Decimal | None:
    return (amount / total).quantize(Decimal("0.0001")) if total else None


def share_table(key: str, by: str, groups: list[Share], label: Callable[[str], str], *, count: tuple[str, str],
                amount: tuple[str, str], kinds: tuple[str, str], blocked: bool, note: str = "") -> Table:
    """The grouped table: one row per party with its count, stopped (``blocked``), amount,
    share of the amount and what it was."""
    zh, en = PARTIES[by]
    total = sum((g.amount for g in groups), Decimal(0))
    columns = [Column(zh, en, "code"), Column(*count, "count", total=True)]
    if blocked:
        columns.append(Column("已拦截", "Stopped", "count", total=True))
    columns += [Column(*amount, "money", total=True), Column("占金额", "Share of the amount", "percent"),
                Column(*kinds, wrap=True)]
    rows = []
    for g in groups:
        row: list[Any] = [g.party.coded(), g.count]
        if blocked:
            row.append(g.blocked)
        rows.append([*row, g.amount, share_of(g.amount, total), kinds_text(g.kinds, label)])
    return Table(key, f"按{zh} By {en.lower()}", f"按{zh}", f"By {en.lower()}", tuple(columns), rows, note=note)
