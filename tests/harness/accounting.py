"""What the centre holds and what the state database says, and the comparison of a run with a
fault-free reference run of the same HIS.

The centre's ledger (``SimulatedCentre.ledger``) is read directly. What it holds is flattened
into a set of items, each named by keys that do not depend on the run: the centre issues its own
mdtrt_id at every registration (2401, 2201), so a visit is named by (psn_no, ipt_no / ipt_otp_no)
as registered, and a fee line by its visit, feedetl_sn, national code, quantity and amount. A
line filed under the wrong visit therefore shows up as one item lost and one unexpected.
Repeats the centre kept once or refused as already done are counted apart (``repeats``).

A 3507 (商品信息删除) the centre holds that the reference's does not is the adapter's own
withdrawal of inventory data whose upload had an unknown outcome, before sending it again (as a
2601 reversal, or a 2302 withdrawal of fee lines, none of which is an item): it is listed apart
(``corrections``). What it did to the data shows in the items it deleted: one left deleted that
the reference holds is lost.

A record of the state database is named by (infno, business_key); the comparison allows a
record that the reference sent to end withdrawn instead (a cancel that arrived before its line
left: 2301/2302, 2204/2205), nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapter_nhsa.hooks import LOST_REPLIES
from sqlalchemy import create_engine, func, select

from adapter.plugin.api import LostReplyMethod
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.spool.states import UNSENT_MESSAGE_STATES, RecordStatus
from adapter.state import schema

Item = tuple[str, ...]

#: the final states of a record
FINAL = frozenset({RecordStatus.SENT.value, RecordStatus.PARKED.value, RecordStatus.WITHDRAWN.value})
#: records a cancel may withdraw before they leave, and the cancels closed that way
WITHDRAWABLE = frozenset({"2301", "2302", "2204", "2205"})


def _visit(ledger: CentreLedger, mdtrt_id: str) -> Item:
    visit = ledger.visits.get(mdtrt_id)
    if visit is None:
        return ("unregistered", mdtrt_id)
    return ("otp" if visit.get("outpatient") else "ipt", str(visit["psn_no"]), str(visit["ipt_no"]))


def centre_items(ledger: CentreLedger) -> set[Item]:
    """Everything the centre holds, as run-independent items (see the module docstring)."""
    with ledger.lock:
        items: set[Item] = set()
        for (mdtrt_id, sn), line in ledger.fee_lines.items():
            infno = "2204" if line.chrg_bchno else "2301"
            items.add((infno, *_visit(ledger, mdtrt_id), sn, line.chrg_bchno, line.med_list_codg,
                       str(line.cnt), str(line.det_item_fee_sumamt), line.init_feedetl_sn))
        for psn_no, ipt_no in ledger.admissions_by_ipt:
            items.add(("2401", psn_no, ipt_no))
        for psn_no, otp_no in ledger.registrations:
            items.add(("2201", psn_no, otp_no))
        for mdtrt_id in ledger.visit_info:
            items.add(("2203", *_visit(ledger, mdtrt_id)))
        for mdtrt_id, visit in ledger.visits.items():
            if visit.get("discharged"):
                items.add(("2402", *_visit(ledger, mdtrt_id)))
        for key in ledger.inventory:
            items.add((*key, "deleted" if key in ledger.deleted_inventory else "held"))
        for setl_id, held in ledger.settlement_lists.items():
            items.add(("4101", setl_id, *_visit(ledger, str(held["setlinfo"].get("mdtrt_id") or ""))))
        return items


#: transactions the region settles after a lost reply by sending them again (LostReplyMethod.
#: RESEND): 2203 replaces the visit's diagnosis at the centre, a repeated withdrawal finds
#: nothing left. A repeat of those is the declared way, not a duplicate; what the centre holds
#: is still compared item by item.
_RESENT_BY_DESIGN = frozenset(
    infno for infno, way in LOST_REPLIES.items() if way.method is LostReplyMethod.RESEND
)


def centre_repeats(ledger: CentreLedger) -> Counter[str]:
    """infno -> requests the centre took (or refused) as a repeat of something it held: 2301 per
    fee line, 2204 per charge batch, the others per record (not those resent by design)."""
    with ledger.lock:
        repeats = Counter({infno: n for infno, n in ledger.duplicates.items()
                           if n and infno not in _RESENT_BY_DESIGN})
        if ledger.duplicate_lines:
            repeats["2301"] += ledger.duplicate_lines
        return repeats


@dataclass(frozen=True)
class StateRecord:
    status: str
    park_kind: str
    park_reason: str


@dataclass
class StateView:
    #: (infno, business_key) -> the record's state
    records: dict[tuple[str, str], StateRecord]
    #: message status -> count
    messages: Counter[str]
    #: (id, infno, status, attempts, last_error) of the messages not acked or parked
    unfinished: list[tuple[int, str, str, int, str]] = field(default_factory=list)

    @property
    def unfinished_messages(self) -> int:
        return sum(n for status, n in self.messages.items() if status in {s.value for s in UNSENT_MESSAGE_STATES})


class StateReader:
    """Reads the state database with one engine of its own (short transactions, no writes)."""

    def __init__(self, url: str) -> None:
        self.url = url
        args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, connect_args=args, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    def view(self) -> StateView:
        record, message = schema.record, schema.message
        with self.engine.connect() as conn:
            rows = conn.execute(select(record.c.infno, record.c.business_key, record.c.status,
                                       record.c.park_kind, record.c.park_reason)).all()
            counts = conn.execute(select(message.c.status, func.count()).group_by(message.c.status)).all()
            unfinished = conn.execute(
                select(message.c.id, message.c.infno, message.c.status, message.c.attempts, message.c.last_error)
                .where(message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES])).order_by(message.c.id)
            ).all()
        return StateView(
            {(r.infno, r.business_key): StateRecord(r.status, r.park_kind or "", r.park_reason or "") for r in rows},
            Counter({status: int(n) for status, n in counts}),
            [(m.id, m.infno, m.status, int(m.attempts or 0), (m.last_error or "")[:240]) for m in unfinished],
        )

    def progress(self) -> tuple[int, int, tuple[tuple[str, str, int], ...]]:
        """(records extracted, work left: unsent messages and records not yet in a message, and
        the counts per state of records and messages: what changes while work gets done)."""
        record, message = schema.record, schema.message
        waiting = {RecordStatus.NEW.value, RecordStatus.READY.value}
        unsent = {s.value for s in UNSENT_MESSAGE_STATES}
        with self.engine.connect() as conn:
            records = conn.execute(select(record.c.status, func.count()).group_by(record.c.status)).all()
            messages = conn.execute(select(message.c.status, func.count()).group_by(message.c.status)).all()
        left = sum(int(n) for status, n in records if status in waiting)
        left += sum(int(n) for status, n in messages if status in unsent)
        states = tuple(sorted([("record", status, int(n)) for status, n in records]
                              + [("message", status, int(n)) for status, n in messages]))
        return sum(int(n) for _, n in records), left, states


@dataclass
class Reference:
    """A fault-free run of the same HIS: what the centre must end up holding, and which
    records are parked and why (park_kind)."""

    items: set[Item]
    records: dict[tuple[str, str], StateRecord]
    seconds: float


@dataclass
class Verdict:
    expected: int
    #: items the reference's centre holds that this run's does not
    lost: list[Item] = field(default_factory=list)
    #: items this run's centre holds that the reference's does not (sent when they should not
    #: have been, or filed under another visit)
    unexpected: list[Item] = field(default_factory=list)
    #: 3507 deletions the adapter sent to withdraw inventory data of an unknown outcome (see the
    #: module docstring): not a failure by themselves
    corrections: list[Item] = field(default_factory=list)
    repeats: Counter[str] = field(default_factory=Counter)
    #: records in a state that is not final (not sent, parked or withdrawn)
    unresolved: list[tuple[tuple[str, str], str]] = field(default_factory=list)
    unfinished_messages: int = 0
    unfinished: list[tuple[int, str, str, int, str]] = field(default_factory=list)
    #: records parked here but not in the reference, or the other way round, or for another kind
    parked_differently: list[tuple[tuple[str, str], str, str]] = field(default_factory=list)
    parked_without_reason: list[tuple[str, str]] = field(default_factory=list)
    #: records whose final state differs from the reference's otherwise
    status_differs: list[tuple[tuple[str, str], str, str]] = field(default_factory=list)
    missing_records: list[tuple[str, str]] = field(default_factory=list)
    extra_records: list[tuple[str, str]] = field(default_factory=list)
    parked: int = 0

    @property
    def held(self) -> int:
        return self.expected - len(self.lost)

    @property
    def duplicated(self) -> int:
        return sum(self.repeats.values())

    @property
    def exactly_once(self) -> bool:
        return not (self.lost or self.unexpected or self.repeats or self.unresolved or self.unfinished_messages
                    or self.parked_differently or self.parked_without_reason or self.status_differs
                    or self.missing_records or self.extra_records)

    def summary(self) -> str:
        lost = _by_infno(item[0] for item in self.lost)
        unexpected = _by_infno(item[0] for item in self.unexpected)
        return (f"sent={self.held}/{self.expected} lost={len(self.lost)}{lost} duplicated={self.duplicated}"
                f"{_fmt(self.repeats)} unexpected={len(self.unexpected)}{unexpected} parked={self.parked}"
                f" parked_differently={len(self.parked_differently)} unresolved={len(self.unresolved)}"
                f"+{self.unfinished_messages}msg"
                + (f" corrections={len(self.corrections)}" if self.corrections else ""))

    def details(self, limit: int = 8) -> str:
        parts = []
        for name in ("lost", "unexpected", "corrections", "unresolved", "parked_differently", "parked_without_reason",
                     "status_differs", "missing_records", "extra_records"):
            values: list[Any] = getattr(self, name)
            if values:
                shown = "\n    ".join(repr(v) for v in values[:limit])
                more = f"\n    ... {len(values) - limit} more" if len(values) > limit else ""
                parts.append(f"  {name} ({len(values)}):\n    {shown}{more}")
        if self.repeats:
            parts.append(f"  repeats at the centre: {dict(self.repeats)}")
        if self.unfinished:
            shown = "\n    ".join(repr(m) for m in self.unfinished[:limit])
            parts.append(f"  messages not finished (id, infno, status, attempts, last_error) "
                         f"({len(self.unfinished)}):\n    {shown}")
        return "\n".join(parts)


def _by_infno(infnos: Iterable[str]) -> str:
    return _fmt(Counter(infnos))


def _fmt(counts: Counter[str]) -> str:
    return "(" + ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) + ")" if counts else ""


def compare(reference: Reference, items: set[Item], repeats: Counter[str], state: StateView) -> Verdict:
    verdict = Verdict(expected=len(reference.items), repeats=repeats,
                      unfinished_messages=state.unfinished_messages, unfinished=state.unfinished)
    verdict.lost = sorted(reference.items - items)
    extra = sorted(items - reference.items)
    verdict.corrections = [item for item in extra if item[0] == "3507"]
    verdict.unexpected = [item for item in extra if item[0] != "3507"]
    for key, ref in sorted(reference.records.items()):
        run = state.records.get(key)
        if run is None:
            verdict.missing_records.append(key)
            continue
        if run.status not in FINAL:
            verdict.unresolved.append((key, run.status))
            continue
        if run.status == RecordStatus.PARKED.value:
            verdict.parked += 1
            if not run.park_kind or not run.park_reason.strip():
                verdict.parked_without_reason.append(key)
        ref_parked = ref.park_kind if ref.status == RecordStatus.PARKED.value else ""
        run_parked = run.park_kind if run.status == RecordStatus.PARKED.value else ""
        if ref_parked != run_parked:
            verdict.parked_differently.append((key, ref_parked or ref.status, _described(run)))
        elif not ref_parked and run.status != ref.status and not (
            key[0] in WITHDRAWABLE and {run.status, ref.status} == {RecordStatus.SENT.value,
                                                                    RecordStatus.WITHDRAWN.value}
        ):
            verdict.status_differs.append((key, ref.status, run.status))
    verdict.extra_records = sorted(set(state.records) - set(reference.records))
    return verdict


def _described(record: StateRecord) -> str:
    if record.status != RecordStatus.PARKED.value:
        return record.status
    return f"{record.park_kind}: {record.park_reason[:160]}"
