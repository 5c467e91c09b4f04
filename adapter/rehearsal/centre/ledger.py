"""What the simulated centre accepted: sign-ins, fee lines, per-transaction totals, and the
settlement ledger reconciliation (3201/3202) compares against, per clearing agency."""

from __future__ import annotations

import operator
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
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
    recorded = row.get("setl_optins")
    if recorded:
        return str(recorded)
    setl_id = row.get("setl_id")
    if type(setl_id) is not str:
        setl_id = str(setl_id or "")
    if len(setl_id) != _AGENCY_SETL_ID_LENGTH:
        return home
    issued = _AGENCY_SETL_ID.fullmatch(setl_id)
    return issued.group(1) if issued else home


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
        #: where the centre recorded it, setl_optins (see :func:`clearing_agency`)
        self.settlements: dict[str, dict[str, Any]] = {}
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
            rows = []
            for row in self.settlements.values():
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
        group's amounts are then added up left to right, as a row at a time would."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        with self.lock:
            for row in self.settlements.values():
                if not begin <= str(row["setl_date"]) <= end:
                    continue
                key = (clearing_agency(row, home), str(row["insutype"]), str(row["clr_type"]))
                rows = groups.get(key)
                if rows is None:
                    groups[key] = [row]
                else:
                    rows.append(row)
            return {key: _statement_total(rows) for key, rows in groups.items()}

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


def _statement_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
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
    return sum((value if isinstance(value, Decimal) else Decimal(str(value or 0)) for value in values), Decimal(0))
