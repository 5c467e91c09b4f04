"""What the simulated centre accepted: sign-ins, fee lines, per-transaction totals, and the
settlement ledger reconciliation (3201/3202) compares against, per clearing agency."""

from __future__ import annotations

import operator
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, Inexact, localcontext
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class StoredFeeLine:
    mdtrt_id: str
    feedetl_sn: str
    med_list_codg: str
    cnt: Decimal
    det_item_fee_sumamt: Decimal
    msgid: str
    hosp_appr_flag: str = ""
    exp_content: str = ""
    #: outpatient lines (2204) belong to a charge batch
    chrg_bchno: str = ""
    #: a refund line names the line it refunds
    init_feedetl_sn: str = ""
    #: what 5204 answers besides (the fields of the line as uploaded)
    psn_no: str = ""
    med_type: str = ""
    fee_ocur_time: str = ""
    pric: Decimal = Decimal(0)
    medins_list_codg: str = ""
    drord_no: str = ""
    bilg_dept_codg: str = ""
    bilg_dept_name: str = ""
    bilg_dr_codg: str = ""
    bilg_dr_name: str = ""

    def same_as(self, other: StoredFeeLine) -> bool:
        """The same line, whichever message brought it (a resend of it is a repeat, not a change)."""
        return replace(self, msgid="") == replace(other, msgid="")


@dataclass(frozen=True)
class Reversible:
    """A committed transaction 2601 may reverse: its infno, the person, and how to undo it."""

    infno: str
    psn_no: str
    undo: Callable[[], None]


#: the amounts the centre totals per clearing agency x insurance type x clearing type
STATEMENT_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "cash_payamt")
#: a settlement id as the simulated centre issues them: S, the admdvs of the agency that settled
#: it (6 digits) and a serial (9 digits); the sample HIS writes its settlements' ids this way
_AGENCY_SETL_ID = re.compile(r"S([1-9][0-9]{5})[0-9]{9}")
#: the only length such an id has (looked at first: a month's ledger asks a million times)
_AGENCY_SETL_ID_LENGTH = 16


def clearing_agency(row: Mapping[str, Any], home: str) -> str:
    """The clearing agency (结算经办机构) of a settlement in the ledger: the one recorded with it
    (``setl_optins``), else the one its setl_id names, else ``home``, the institution's own
    agency (its 就医地 mdtrtarea_admvs).

    A real centre returns the agency when it settles (2207/2304). The simulated centre runs no
    settlement: a settlement list (4101) puts the settlement the counter made in its ledger
    (:meth:`CentreLedger.settled_at_counter`), and where the counter did not name the agency it
    knows it from the settlement id, as the centre that issued the id would."""
    agency = own_agency(row)
    return home if agency is None else agency


def own_agency(row: Mapping[str, Any]) -> str | None:
    """The clearing agency the settlement itself names (recorded, or in its setl_id); None
    where it names none, so that it is the requesting institution's (see :func:`clearing_agency`)."""
    recorded = row.get("setl_optins")
    if recorded:
        return str(recorded)
    setl_id = row.get("setl_id")
    if type(setl_id) is not str:
        setl_id = str(setl_id or "")
    if len(setl_id) != _AGENCY_SETL_ID_LENGTH:
        return None
    issued = _AGENCY_SETL_ID.fullmatch(setl_id)
    return issued.group(1) if issued else None


class CentreLedger:
    """Thread-safe store of accepted data, keyed as the centre keys it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: infno -> how the centre's own answers broke the published output tables
        self.output_problems: dict[str, set[str]] = defaultdict(set)
        self.fee_lines: dict[tuple[str, str], StoredFeeLine] = {}
        self.duplicate_lines = 0
        #: valid sign_no -> times used
        self.sign_nos: dict[str, int] = {}
        self.sign_outs = 0
        #: sign_nos a restart forgot (a message with one is refused as a session that does not exist)
        self.forgotten_sign_nos: set[str] = set()
        #: msgid of a committed reversible transaction -> what it was and how to undo it (2601)
        self.reversible: dict[str, Reversible] = {}
        self.reversals = 0
        #: mdtrt_id -> {psn_no, ipt_no, discharged, begntime, endtime, insutype, med_type,
        #: outpatient} (2201/2203, 2401/2402)
        self.visits: dict[str, dict[str, Any]] = {}
        #: psn_no -> what messages said of the person (see adapter.rehearsal.centre.people)
        self.persons: dict[str, dict[str, str]] = {}
        self.admissions_by_ipt: dict[tuple[str, str], str] = {}
        #: (infno, business key...) -> record (3501-3507)
        self.inventory: dict[tuple[str, ...], dict[str, Any]] = {}
        #: keys of the inventory records a 3507 deleted (they stay in ``inventory``: what arrived)
        self.deleted_inventory: set[tuple[str, ...]] = set()
        #: infno -> repeats the centre kept once (or refused as already done)
        self.duplicates: Counter[str] = Counter()
        #: (psn_no, ipt_otp_no) -> mdtrt_id (2201 outpatient registrations)
        self.registrations: dict[tuple[str, str], str] = {}
        #: mdtrt_id -> the latest 2203 visit information
        self.visit_info: dict[str, dict[str, Any]] = {}
        #: infno (2302, 2205) -> fee lines withdrawn
        self.cancelled_lines: Counter[str] = Counter()
        #: setl_id -> the settlement list as the centre holds it, and 4103 answers it: the nodes of
        #: the 4101 that brought it in the edition's output layout (one setlinfo object, the
        #: other nodes lists), with the settlement's money and the centre's own iteminfo (收费项目
        #: 信息, from the stay's fee lines it holds)
        self.settlement_lists: dict[str, dict[str, Any]] = {}
        #: setl_id -> the settlement as the counter made it with the centre (the setlinfo of its
        #: 2304 answer, see :meth:`settled_at_counter`): what the settlement list of it adds to
        #: ``settlements`` when it arrives
        self.counter_settlements: dict[str, dict[str, Any]] = {}
        #: setl_id -> the centre's settlement ledger row (what 3201/3202 compare against): setl_id,
        #: mdtrt_id, psn_no, insutype, clr_type, setl_date, medfee_sumamt, fund_pay_sumamt,
        #: acct_pay, cash_payamt, refd_setl_flag, msgid (of the settlement transaction) and,
        #: where the centre recorded it, setl_optins (see :func:`clearing_agency`); read it as
        #: :attr:`settlements`, write it with :meth:`record_settlement`, :meth:`change_settlement`
        #: and :meth:`remove_settlement`
        self._settlements = SettlementBook()
        #: (infno, data) of every 3201/3202 the centre answered, in order
        self.statements: list[tuple[str, dict[str, Any]]] = []
        #: file_qury_no -> (filename, bytes) uploaded with 9101 or published for 9102
        self.files: dict[str, tuple[str, bytes]] = {}
        #: catalogue kind -> the rows the centre publishes (served as files newer than ``ver``)
        self.catalogues: dict[str, list[Any]] = {}
        self.expired_sessions = 0
        #: messages refused for a sign_no a restart forgot
        self.forgotten_session_refusals = 0
        self.msgids: set[str] = set()
        self.requests: Counter[str] = Counter()
        #: POSTs being answered now, and the most there ever were at once (shows a client's
        #: messages in flight together)
        self.in_progress = 0
        self.most_at_once = 0
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        #: infno -> URL paths it arrived on (shows the region's URL style at work)
        self.paths: dict[str, set[str]] = {}
        #: infno -> gateway header names seen (shows the region's gateway scheme at work)
        self.gateway_headers: dict[str, set[str]] = {}
        self._serial = 0

    def settled_at_counter(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Settlements made with this centre at the hospital's counter (2304 住院结算, which the
        HIS sends, not the adapter, and which the simulated centre does not run): each the
        ``setlinfo`` of its answer (setl_id, mdtrt_id, psn_no, insutype, clr_type, setl_time,
        medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay, optionally fulamt_ownpay_amt)
        with the settlement request's ``msgid``, and where known ``setl_optins`` (the clearing
        agency) and ``refd_setl_flag``. A settlement enters the reconciled ledger
        (``settlements``) when its list (4101) arrives, under the mdtrt_id the list names."""
        with self.lock:
            for row in rows:
                self.counter_settlements[str(row["setl_id"])] = dict(row)

    # -- the settlement ledger: every write through these, so that its totals stay its rows' ----
    @property
    def settlements(self) -> SettlementBook:
        """setl_id -> the settlement ledger row, read-only (see :class:`SettlementBook`)."""
        return self._settlements

    @settlements.setter
    def settlements(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        """The ledger replaced by ``rows`` (setl_id -> row), each recorded in their order."""
        with self.lock:
            book = SettlementBook()
            for setl_id, row in rows.items():
                book.record(row, setl_id=setl_id)
            self._settlements = book

    def record_settlement(self, row: Mapping[str, Any]) -> None:
        """A settlement in the ledger under its setl_id (a copy of ``row``), replacing one of that
        id in its place."""
        with self.lock:
            self._settlements.record(row)

    def change_settlement(self, setl_id: str, **changes: Any) -> None:
        """Fields of the settlement ``setl_id`` changed (KeyError if the ledger has none)."""
        with self.lock:
            self._settlements.change(setl_id, **changes)

    def remove_settlement(self, setl_id: str) -> None:
        """The settlement ``setl_id`` out of the ledger (KeyError if it has none)."""
        with self.lock:
            self._settlements.remove(setl_id)

    def next_serial(self) -> int:
        with self.lock:
            self._serial += 1
            return self._serial

    # -- reconciliation: the settlement ledger per clearing agency ---------------------------
    def reconciled_settlements(self, begin: str, end: str, home: str, setl_optins: str | None = None,
                               clr_type: str | None = None, *, copies: bool = True) -> list[dict[str, Any]]:
        """Copies of the settlements dated ``begin``..``end`` (yyyy-MM-dd), of one clearing
        agency and clearing type if given, each with its clearing agency in ``setl_optins``.
        ``copies=False``: the ledger's own rows (without ``setl_optins`` added), for a caller that
        holds :attr:`lock` while it reads them (a month's copies would be a gigabyte)."""
        with self.lock:
            if setl_optins is not None and clr_type is not None and not copies:
                held = self._settlements.partition(begin, end, home, setl_optins, clr_type)
                if held is not None:
                    return held
            return self.scanned_settlements(begin, end, home, setl_optins, clr_type, copies=copies)

    def scanned_settlements(self, begin: str, end: str, home: str, setl_optins: str | None = None,
                            clr_type: str | None = None, *, copies: bool = True) -> list[dict[str, Any]]:
        """:meth:`reconciled_settlements` read from every row of the ledger (the definition the
        kept partitions of :class:`SettlementBook` answer for)."""
        with self.lock:
            rows = []
            for row in self._settlements.rows():
                if not begin <= str(row["setl_date"]) <= end or (clr_type is not None and row["clr_type"] != clr_type):
                    continue
                agency = clearing_agency(row, home)
                if setl_optins is None or agency == setl_optins:
                    rows.append({**row, "setl_optins": agency} if copies else row)
            return rows

    def statement_totals(self, begin: str, end: str, home: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(setl_optins, insutype, clr_type) -> medfee_sumamt, fund_pay_sumamt, acct_pay,
        cash_payamt and count of the settlements dated ``begin``..``end``: what 3201 compares
        against. The ledger is read in one pass that sorts its rows into their groups; each
        group's amounts are then added up left to right, as a row at a time would. The totals
        kept as settlements are recorded answer for it (see :class:`SettlementBook`)."""
        with self.lock:
            kept = self._settlements.totals(begin, end, home)
            return kept if kept is not None else self.scanned_totals(begin, end, home)

    def scanned_totals(self, begin: str, end: str, home: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        """:meth:`statement_totals` read from every row of the ledger in one pass."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        with self.lock:
            for row in self._settlements.rows():
                if not begin <= str(row["setl_date"]) <= end:
                    continue
                key = (clearing_agency(row, home), str(row["insutype"]), str(row["clr_type"]))
                rows = groups.get(key)
                if rows is None:
                    groups[key] = [row]
                else:
                    rows.append(row)
            return {key: statement_total(rows) for key, rows in groups.items()}

    def totals(self) -> dict[str, Any]:
        """Per-transaction counts and the fee-detail sums (what tests and demo read)."""
        with self.lock:
            amount = sum((line.det_item_fee_sumamt for line in self.fee_lines.values()), Decimal(0))
            return {
                "requests": dict(self.requests),
                "accepted": dict(self.accepted),
                "rejected": dict(self.rejected),
                "faults": dict(self.faults),
                "fee_lines": len(self.fee_lines),
                "fee_lines_duplicates": self.duplicate_lines,
                "fee_amount": str(amount),
                "visits": len({key[0] for key in self.fee_lines}),
                "reversals": self.reversals,
                "visits_registered": len(self.visits),
                "visits_discharged": sum(1 for v in self.visits.values() if v["discharged"]),
                "inventory": dict(Counter(key[0] for key in self.inventory)),
                "outpatient_registrations": len(self.registrations),
                "outpatient_visit_info": len(self.visit_info),
                "outpatient_fee_lines": sum(1 for line in self.fee_lines.values() if line.chrg_bchno),
                "outpatient_batches": len({(line.mdtrt_id, line.chrg_bchno) for line in self.fee_lines.values()
                                           if line.chrg_bchno}),
                "cancelled_lines": dict(self.cancelled_lines),
                "settlement_lists": len(self.settlement_lists),
                "files": len(self.files),
                "duplicates": dict(self.duplicates),
                "sessions": {
                    "open": len(self.sign_nos),
                    "signed_out": self.sign_outs,
                    "expired": self.expired_sessions,
                    "forgotten": self.forgotten_session_refusals,
                },
            }


def statement_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The amounts of ``rows`` added up (see :meth:`CentreLedger.statement_totals`) and their count."""
    total: dict[str, Any] = {name: _amount_sum(rows, name) for name in STATEMENT_AMOUNTS}
    total["count"] = len(rows)
    return total


def _amount_sum(rows: list[dict[str, Any]], name: str) -> Decimal:
    """The sum of one amount of ``rows``, each read as a Decimal (an absent or empty one as 0).
    A column of Decimals (the ledger's own) is added in C; any other goes value by value."""
    values = list(map(operator.methodcaller("get", name), rows))
    if set(map(type, values)) <= {Decimal}:
        return sum(values, Decimal(0))
    return sum(map(_amount_of, values), Decimal(0))


def _amount_of(value: Any) -> Decimal:
    """A ledger amount as a Decimal (an absent or empty one as 0)."""
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


#: where a settlement is kept in :class:`SettlementBook`: the clearing agency it names itself
#: (None: the requesting institution's, see :func:`own_agency`), insutype, clr_type, setl_date
_BucketKey = tuple[str | None, str, str, str]
#: the settlements of one 3202: the clearing agency as above, and clr_type as the row holds it
_PartitionKey = tuple[str | None, Any]


class _Bucket:
    """The settlements of one :data:`_BucketKey` (setl_id -> None, in the order they came) and
    their totals, the very Decimals :func:`statement_total` gives for its rows: kept as rows
    come and go (each amount added or taken away exactly, and the sum then written with the
    exponent a sum of the rows has, the least of their amounts'), or None until they are
    added up again from the rows (an amount that does not read as a finite Decimal, a sum
    that would round)."""

    __slots__ = ("exponents", "key", "members", "total")

    def __init__(self, key: _BucketKey) -> None:
        self.key = key
        self.members: dict[str, None] = {}
        self.total: dict[str, Any] | None = {**{name: Decimal(0) for name in STATEMENT_AMOUNTS}, "count": 0}
        #: amount -> exponent -> how many of the rows' amounts have it
        self.exponents: dict[str, Counter[int]] = {name: Counter() for name in STATEMENT_AMOUNTS}

    def count_in(self, row: Mapping[str, Any], sign: int) -> None:
        """The row's amounts added to the kept totals (``sign`` 1) or taken away from them (-1)."""
        if self.total is None:
            return
        try:
            amounts = [_amount_of(row.get(name)) for name in STATEMENT_AMOUNTS]
            exponents = [e for amount in amounts if isinstance(e := amount.as_tuple().exponent, int)]
            if len(exponents) != len(amounts):  # NaN, Infinity
                raise ValueError("not a finite amount")
            with localcontext() as context:
                context.traps[Inexact] = True
                total = {}
                for name, amount, exponent in zip(STATEMENT_AMOUNTS, amounts, exponents, strict=True):
                    held = self.exponents[name]
                    held[exponent] += sign
                    if held[exponent] <= 0:
                        del held[exponent]
                    value = self.total[name] + amount if sign > 0 else self.total[name] - amount
                    total[name] = value.quantize(Decimal(1).scaleb(min(0, *held)))
        except (ArithmeticError, ValueError, TypeError):
            self.total = None  # added up again from the rows (and refused there, if it must be) when asked for
            return
        self.total.update(total)
        self.total["count"] += sign

    def recount(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The totals added up again from the bucket's rows (and kept, where every amount is a
        finite Decimal)."""
        total = statement_total(rows)
        exponents: dict[str, Counter[int]] = {}
        for name in STATEMENT_AMOUNTS:
            counted = Counter(_amount_of(row.get(name)).as_tuple().exponent for row in rows)
            if not all(type(e) is int for e in counted):
                return total
            exponents[name] = counted  # type: ignore[assignment]
        self.total, self.exponents = total, exponents
        return total


class SettlementBook(Mapping[str, Mapping[str, Any]]):
    """The centre's settlement ledger: setl_id -> row, in the order a dict of them keeps (a new
    setl_id at the end, a replaced row in its place), written only through :meth:`record`,
    :meth:`change` and :meth:`remove`.

    So the book keeps, as settlements come, the totals per clearing agency x insurance type x
    clearing type x day, and the settlements of each clearing agency x clearing type in the
    ledger's order: a 3201 adds up a month's days instead of reading every row of the ledger
    again, and a 3202 reads only its own settlements. What they answer is what a pass over the
    rows gives (:meth:`CentreLedger.scanned_totals`, :meth:`CentreLedger.scanned_settlements`);
    while the ledger holds a row without the fields that place it (insutype, clr_type,
    setl_date), they answer None and that pass is made instead.

    A row read through the mapping is a read-only view (one changed in place would leave the
    totals behind); :meth:`rows` gives the rows themselves to code that only reads them."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        #: setl_id -> its place in the order of ``_rows`` (a removed setl_id's place is not reused)
        self._place: dict[str, int] = {}
        self._next_place = 0
        #: setl_id -> (its bucket, its partition)
        self._where: dict[str, tuple[_Bucket, _PartitionKey]] = {}
        self._buckets: dict[_BucketKey, _Bucket] = {}
        #: partition -> setl_id -> row, and whether it is in the order of ``_rows``
        self._partitions: dict[_PartitionKey, dict[str, dict[str, Any]]] = {}
        self._in_order: dict[_PartitionKey, bool] = {}
        #: setl_ids of rows that cannot be placed (a field missing or unhashable)
        self._unplaced: set[str] = set()

    # -- the mapping, read-only ------------------------------------------------------------
    def __getitem__(self, setl_id: str) -> Mapping[str, Any]:
        return MappingProxyType(self._rows[setl_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> Iterable[dict[str, Any]]:
        """The rows themselves in the ledger's order, to be read (not changed) under the lock."""
        return self._rows.values()

    # -- writes ----------------------------------------------------------------------------
    def record(self, row: Mapping[str, Any], *, setl_id: str | None = None) -> None:
        """A copy of ``row`` under ``setl_id`` (default: its own setl_id), replacing a row of that
        setl_id in its place."""
        key = str(row["setl_id"]) if setl_id is None else setl_id
        was = None
        if key in self._rows:
            was = self._leave(key)
        else:
            self._place[key] = self._next_place
            self._next_place += 1
        self._rows[key] = copy = dict(row)
        self._join(key, copy, was)

    def change(self, setl_id: str, **changes: Any) -> None:
        """Fields of the row ``setl_id`` changed (KeyError if there is none)."""
        row = self._rows[setl_id]
        was = self._leave(setl_id)
        row.update(changes)
        self._join(setl_id, row, was)

    def remove(self, setl_id: str) -> None:
        """The row ``setl_id`` gone (KeyError if there is none)."""
        if setl_id not in self._rows:
            raise KeyError(setl_id)
        self._out_of_partition(setl_id, self._leave(setl_id))
        del self._rows[setl_id], self._place[setl_id]

    def _join(self, setl_id: str, row: dict[str, Any], was: _PartitionKey | None) -> None:
        """The row placed; ``was``: the partition it is still in (it keeps its place there)."""
        agency = own_agency(row)
        try:
            key: _BucketKey = (agency, str(row["insutype"]), str(row["clr_type"]), str(row["setl_date"]))
            partition: _PartitionKey = (agency, row["clr_type"])
            hash(partition)
        except (KeyError, TypeError):
            self._out_of_partition(setl_id, was)
            self._unplaced.add(setl_id)
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(key)
        bucket.members[setl_id] = None
        bucket.count_in(row, 1)
        if partition != was:
            self._out_of_partition(setl_id, was)
            rows = self._partitions.get(partition)
            if rows is None:
                rows = self._partitions[partition] = {}
                self._in_order[partition] = True
            elif self._in_order[partition]:
                self._in_order[partition] = self._place[next(reversed(rows))] < self._place[setl_id]
        else:
            rows = self._partitions[partition]
        rows[setl_id] = row
        self._where[setl_id] = (bucket, partition)

    def _leave(self, setl_id: str) -> _PartitionKey | None:
        """The row out of its bucket (its fields as they were); returns its partition, which
        still holds it (None: it had none)."""
        if setl_id in self._unplaced:
            self._unplaced.discard(setl_id)
            return None
        bucket, partition = self._where.pop(setl_id)
        del bucket.members[setl_id]
        bucket.count_in(self._rows[setl_id], -1)
        if not bucket.members:
            del self._buckets[bucket.key]
        return partition

    def _out_of_partition(self, setl_id: str, partition: _PartitionKey | None) -> None:
        if partition is None:
            return
        rows = self._partitions[partition]
        del rows[setl_id]
        if not rows:
            del self._partitions[partition], self._in_order[partition]

    # -- what 3201 and 3202 read -----------------------------------------------------------
    def totals(self, begin: str, end: str, home: str) -> dict[tuple[str, str, str], dict[str, Any]] | None:
        """:meth:`CentreLedger.scanned_totals` from the kept totals (None: make that pass)."""
        if self._unplaced:
            return None
        groups: dict[tuple[str, str, str], list[_Bucket]] = {}
        for (agency, insutype, clr_type, day), bucket in self._buckets.items():
            if begin <= day <= end:
                groups.setdefault((home if agency is None else agency, insutype, clr_type), []).append(bucket)
        return {group: self._total(buckets) for group, buckets in groups.items()}

    def _total(self, buckets: list[_Bucket]) -> dict[str, Any]:
        """The totals of some buckets: their kept totals added up. The amounts are Decimals
        added exactly (a few decimals each), so that is the sum of their rows, in any order; a
        sum that would round (Inexact) is not taken, and the rows are added up instead."""
        totals = [bucket.total if bucket.total is not None
                  else bucket.recount([self._rows[setl_id] for setl_id in bucket.members]) for bucket in buckets]
        try:
            with localcontext() as context:
                context.traps[Inexact] = True
                total = {name: sum((t[name] for t in totals), Decimal(0)) for name in STATEMENT_AMOUNTS}
        except Inexact:
            members = {setl_id for bucket in buckets for setl_id in bucket.members}
            return statement_total([row for setl_id, row in self._rows.items() if setl_id in members])
        total["count"] = sum(t["count"] for t in totals)
        return total

    def partition(self, begin: str, end: str, home: str, setl_optins: str,
                  clr_type: str) -> list[dict[str, Any]] | None:
        """:meth:`CentreLedger.scanned_settlements` of one clearing agency and clearing type (the
        rows themselves) from the kept partitions (None: make that pass)."""
        if self._unplaced:
            return None
        keys: list[_PartitionKey] = [(setl_optins, clr_type)] + ([(None, clr_type)] if setl_optins == home else [])
        held = [key for key in keys if key in self._partitions]
        rows: Iterable[dict[str, Any]]
        if not held:
            return []
        if len(held) == 1 and self._in_order[held[0]]:
            rows = self._partitions[held[0]].values()
        else:  # rows of two partitions, or that joined out of the ledger's order: in its order
            place = self._place
            rows = [row for _, row in sorted(((place[setl_id], row) for key in held
                                              for setl_id, row in self._partitions[key].items()),
                                             key=operator.itemgetter(0))]
        return [row for row in rows if begin <= str(row["setl_date"]) <= end]
