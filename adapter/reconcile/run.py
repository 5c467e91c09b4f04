"""One reconciliation: 3201 for every clearing agency x insurance type x clearing type, and
for every clearing agency x clearing type with a group that does not balance, the 3202
drill-down (detail file -> 9101 -> 3202 -> 9102 -> result.txt), each difference classified
and linked to the settlement's msgid and to the adapter's own messages.

The clearing agency (setl_optins, 结算经办机构) is the one the centre returned at settlement,
from the settlement query's optional ``setl_optins`` column; settlements without one belong to
``[centre] setl_optins`` (default: mdtrtarea_admvs). Settlements of other pooling areas (异地)
are reconciled under their own agency."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select

from adapter.errors import BusinessRejection
from adapter.outbound.client import CentreClient
from adapter.outbound.files import FileTransfer
from adapter.progress import SILENT, Reporter
from adapter.reconcile.local import PAGE_SIZE, Columns, Group, HisSettlement, Period, Totals, money, settlement_columns
from adapter.reconcile.month import ACCT, FUND, MDTRT_ID, MEDFEE, MSGID, PSN_NO, REFD, SETL_ID, KeptSettlements, Month
from adapter.records import Settlement
from adapter.spool.visits import registered_mdtrt_ids
from adapter.state import schema
from adapter.state.store import StateStore, inserted_id, utcnow
from adapter.zipped_text import text_from_zip, zip_chunks

logger = logging.getLogger(__name__)

#: stmt_rslt as the interface's dictionary gives it (6.11: 0 平, 1 不平), and the variants some
#: regions write ("000000" for balanced; 2 and 3 in older result files)
RESULTS = {"0": "balanced 平", "1": "not balanced 不平", "2": "institution has more 医药机构多",
           "3": "mismatch 数据不一致"}
#: the 3202 input file (输入文件参数说明), in its order
DETAIL_COLUMNS = ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "refd_setl_flag")
#: the 3202 output file (输出文件参数说明), in its order; msgid is the settlement's (2207/2304)
RESULT_COLUMNS = ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt", "refd_setl_flag", "memo", "medfee_sumamt",
                  "fund_pay_sumamt", "acct_pay")


def normalise_result(value: Any) -> str:
    """"0", 0, "000000", "00" -> "0"; other codes as their number."""
    text = str(value).strip()
    try:
        return str(int(text))
    except ValueError:
        return text


@dataclass
class Difference:
    setl_id: str
    #: only_centre, only_hospital, amount, refund_flag, duplicate
    kind: str
    detail: str
    insutype: str = ""
    mdtrt_id: str = ""
    psn_no: str = ""
    field_name: str = ""
    hospital: str = ""
    centre: str = ""
    delta: str = ""
    #: the settlement's msgid (its 2207/2304 at the centre) as result.txt names it, and as the
    #: HIS kept it (the settlement query's msgid column)
    centre_msgid: str = ""
    setl_msgid: str = ""
    #: the adapter's own message that carried the settlement (4101A), where there is one
    our_msgid: str = ""


@dataclass
class PairResult:
    """One 3201: a clearing agency x insurance type x clearing type."""

    setl_optins: str
    insutype: str
    clr_type: str
    local: dict[str, Any]
    stmt_rslt: str
    description: str
    differences: list[Difference] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.stmt_rslt == "0"


@dataclass
class ReconRun:
    period: Period
    pairs: list[PairResult]
    #: day -> (count, medfee_sumamt, fund_pay_sumamt) of the hospital's settlements, for the chart
    daily: dict[str, list[str]] = field(default_factory=dict)
    id: int | None = None
    created_at: Any = None

    @property
    def balanced(self) -> bool:
        return all(p.balanced for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "period": {"start": str(self.period.start), "end": str(self.period.end),
                                      "kind": self.period.kind},
            "balanced": self.balanced, "created_at": str(self.created_at or ""),
            "pairs": [{**asdict(p), "balanced": p.balanced} for p in self.pairs], "daily": self.daily,
        }


class Reconciler:
    def __init__(self, *, client: CentreClient, files: FileTransfer, store: StateStore, his_url: str,
                 settlement_query: str, setl_optins: str, fixmedins_code: str,
                 fund_of: Callable[[Settlement], Decimal] | None = None, progress: Reporter = SILENT,
                 page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.progress = progress
        self.files = files
        self.store = store
        self.his_url = his_url
        self.settlement_query = settlement_query
        self.setl_optins = setl_optins
        self.fixmedins_code = fixmedins_code
        self.fund_of = fund_of
        #: settlements read from the HIS at a time
        self.page_size = page_size

    def run(self, period: Period) -> ReconRun:
        with self.progress.start("reconcile", "HIS", unit="settlements") as task:
            month = self._month(period, task.advance)
        results = []
        with self.progress.start("reconcile", "3201", unit="pairs", total=len(month.groups)) as task:
            for group, total in sorted(month.groups.items()):
                results.append(self._totals(period, group, total))
                task.advance()
        unbalanced = sorted({(p.setl_optins, p.clr_type) for p in results if not p.balanced})
        drills = []
        with self.progress.start("reconcile", "3202", unit="drill-downs", total=len(unbalanced)) as task:
            for setl_optins, clr_type in unbalanced:
                drills.append(self._drill_down(period, month, month.partitions[(setl_optins, clr_type)]))
                task.advance()
        # One read of the adapter's 4101s for every drill-down, keeping only the settlements named.
        ours = self._our_msgids({setl_id for drill in drills for setl_id in drill.setl_ids()})
        for drill in drills:
            differences = classify(drill.named, drill.result, ours)
            where = (drill.kept.setl_optins, drill.kept.clr_type)
            pairs = [p for p in results if (p.setl_optins, p.clr_type) == where]
            results += place(pairs, differences, drill.nearby(differences))
        run = ReconRun(period, results, month.daily())
        self._store(run)
        return run

    def _month(self, period: Period, progress: Callable[[int], None]) -> Month:
        """The period's settlements as the centre knows them, in one pass over the HIS: a stay by
        the mdtrt_id the adapter registered, no clearing agency meaning the configured one, and
        fund_pay_sumamt as the region counts it (in the totals and the detail file alike)."""
        month = Month()
        # Where the adapter registered no visit (the HIS registers them itself), every stay is
        # known to the centre by the HIS's own number: no page needs looking up.
        mdtrt_ids_of = self._mdtrt_ids if self._any_visit() else None
        for page in settlement_columns(self.his_url, self.settlement_query, period, mdtrt_ids_of=mdtrt_ids_of,
                                       setl_optins=self.setl_optins, page_size=self.page_size):
            month.add_columns(self._regional(page))
            progress(len(page.setl_id))
        return month

    def _regional(self, page: Columns) -> Columns:
        """The page with fund_pay_sumamt as the region's hook reads it. Only a region with a hook
        of its own costs a settlement object a row (the hook is given a Settlement); without
        one the HIS's figure is the region's."""
        if self.fund_of is None:
            return page
        fund_of = self.fund_of
        # A figure the hook leaves equal keeps the HIS's own writing of it (1.5 stays 1.5, not 1.50).
        funds = [own if own == fund else fund
                 for own, fund in zip(page.fund_pay_sumamt, map(fund_of, page.settlements()), strict=True)]
        texts = [text if own is fund else str(fund)
                 for own, fund, text in zip(page.fund_pay_sumamt, funds, page.fund_text, strict=True)]
        return page._replace(fund_pay_sumamt=funds, fund_text=texts)

    def _any_visit(self) -> bool:
        """Whether the adapter registered any visit (the visit table has a row)."""
        with self.store.begin() as conn:
            return conn.execute(select(schema.visit.c.his_key).limit(1)).first() is not None

    def _mdtrt_ids(self, stay_keys: set[str]) -> dict[str, str]:
        """The centre's mdtrt_id of those of ``stay_keys`` the adapter registered (one page's: the
        visit table can hold years of them)."""
        with self.store.begin() as conn:
            return registered_mdtrt_ids(conn, sorted(stay_keys))

    def _totals(self, period: Period, group: Group, total: Totals) -> PairResult:
        setl_optins, insutype, clr_type = group
        _, reply = self.client.call("3201", {"data": {
            "insutype": insutype, "clr_type": clr_type, "setl_optins": setl_optins,
            "stmt_begndate": f"{period.start:%Y-%m-%d}", "stmt_enddate": f"{period.end:%Y-%m-%d}",
            "medfee_sumamt": money(total.medfee_sumamt), "fund_pay_sumamt": money(total.fund_pay_sumamt),
            "acct_pay": money(total.acct_pay), "fixmedins_setl_cnt": total.count,
            "fixmedins_refd_setl_flag": total.refd_setl_flag,
        }}, message_id=None)
        info = (reply.output or {}).get("stmtinfo") or {}
        if "stmt_rslt" not in info:
            raise BusinessRejection("3201 answered without stmtinfo.stmt_rslt")
        code = normalise_result(info["stmt_rslt"])
        return PairResult(setl_optins, insutype, clr_type, _local(total), code,
                          str(info.get("stmt_rslt_dscr") or RESULTS.get(code, code)))

    def _drill_down(self, period: Period, month: Month, kept: KeptSettlements) -> Drill:
        """Detail file -> 9101 -> 3202 -> 9102 -> result.txt for one clearing agency x clearing
        type, and the settlements result.txt names (classified once every drill-down is in)."""
        setl_optins, clr_type = kept.setl_optins, kept.clr_type
        name = f"{self.fixmedins_code}_{setl_optins}_{clr_type}_{period.start:%Y%m%d}_{period.end:%Y%m%d}"
        uploaded = self.files.upload(f"{name}.zip", zip_chunks(f"{name}.txt", _detail_chunks(kept), _DETAIL_LEVEL))
        total = month.partition_totals(setl_optins, clr_type)
        _, reply = self.client.call("3202", {"data": {
            "setl_optins": setl_optins, "file_qury_no": uploaded.file_qury_no,
            "stmt_begndate": f"{period.start:%Y-%m-%d}", "stmt_enddate": f"{period.end:%Y-%m-%d}",
            "medfee_sumamt": money(total.medfee_sumamt), "fund_pay_sumamt": money(total.fund_pay_sumamt),
            "cash_payamt": money(total.cash_payamt), "fixmedins_setl_cnt": total.count, "clr_type": clr_type,
            "fixmedins_refd_setl_flag": total.refd_setl_flag,
        }}, message_id=None)
        info = (reply.output or {}).get("fileinfo") or {}
        if not info.get("file_qury_no"):
            raise BusinessRejection("3202 answered without fileinfo.file_qury_no")
        result = text_from_zip(
            self.files.download(str(info["file_qury_no"]), str(info.get("filename") or "result.zip"))
        )
        logger.info("3202 result for setl_optins %s clr_type %s read as %s", setl_optins, clr_type, result.encoding,
                    extra={"action": "reconcile_result"})
        rows = _parse_result(result.text)
        return Drill(kept, rows, _named(kept, rows, month.seen.candidates))

    def _our_msgids(self, wanted: set[str]) -> dict[str, str]:
        """setl_id -> the msgid of the adapter's message that carried it (4101A), for the setl_ids
        ``wanted``. The ledger holds every settlement list ever sent, so it is read as a stream
        and only the wanted ones are kept (the last record of one, as a dict of all would)."""
        if not wanted:
            return {}
        record, message = schema.record, schema.message
        found: dict[str, str] = {}
        with self.store.begin() as conn:
            rows = conn.execution_options(yield_per=_STREAM_ROWS).execute(
                select(record.c.business_key, message.c.last_msgid)
                .join(message, message.c.id == record.c.message_id)
                .where(record.c.infno.like("4101%")))
            for key, msgid in rows:
                if key in wanted:
                    found[key] = msgid or ""
        return found

    def _store(self, run: ReconRun) -> None:
        now = utcnow()
        with self.store.begin() as conn:
            run.id = inserted_id(conn.execute(insert(schema.recon_run).values(
                kind=run.period.kind, start_date=str(run.period.start), end_date=str(run.period.end),
                balanced=int(run.balanced), pairs=len(run.pairs),
                differences=sum(len(p.differences) for p in run.pairs), created_at=now, report="{}",
            )))
            run.created_at = now
            conn.execute(schema.recon_run.update().where(schema.recon_run.c.id == run.id).values(
                report=json.dumps(run.to_json(), ensure_ascii=False, default=str)))


#: the detail file's deflate level: 1, the fastest. The file is a few columns of digits, so it
#: gives about 20 % more bytes than the default 6 in a third of the time (a month's file:
#: 1,000,000 lines, 55 MB of text)
_DETAIL_LEVEL = 1
#: rows fetched at a time from a streamed query of the state
_STREAM_ROWS = 10_000


@dataclass
class Drill:
    """One clearing agency x clearing type's 3202: its settlements, result.txt's rows, and the
    settlements those rows name (with every occurrence of a setl_id the HIS may repeat)."""

    kept: KeptSettlements
    result: list[dict[str, str]]
    named: list[HisSettlement]

    def setl_ids(self) -> set[str]:
        """Every setl_id :func:`classify` may look up the adapter's 4101 of."""
        return {s.setl_id for s in self.named} | {row["setl_id"] for row in self.result if row["setl_id"]}

    def nearby(self, differences: list[Difference]) -> list[HisSettlement]:
        """The settlements :func:`place` looks at for the differences that name no insurance type:
        those of the same stay or the same person (none when every difference names one)."""
        unnamed = [d for d in differences if not d.insutype]
        mdtrt_ids = {d.mdtrt_id for d in unnamed if d.mdtrt_id}
        psn_nos = {d.psn_no for d in unnamed if d.psn_no}
        if not (mdtrt_ids or psn_nos):
            return []
        return self.kept.having({MDTRT_ID: mdtrt_ids, PSN_NO: psn_nos})


def _named(kept: KeptSettlements, result: list[dict[str, str]], candidates: set[int]) -> list[HisSettlement]:
    """The settlements of ``kept`` that :func:`classify` needs for ``result``: those it names by
    setl_id or msgid, and every one whose setl_id the HIS may repeat (``candidates``: hashes
    from :class:`SeenFilter`), so that classify finds the same duplicates as among them all."""
    setl_ids = {row["setl_id"] for row in result if row["setl_id"]}
    msgids = {row["msgid"] for row in result if row["msgid"]}
    return kept.having({SETL_ID: setl_ids, MSGID: msgids}, candidates)


def _detail_chunks(kept: KeptSettlements) -> Iterator[str]:
    """The detail file, a batch of lines at a time: each line's columns in DETAIL_COLUMNS' order,
    amounts as 数值型 16,2. A batch is joined a column at a time, which runs in C."""
    for columns in kept.column_batches():
        lines = zip(columns[SETL_ID], columns[MDTRT_ID], columns[PSN_NO], _cents_column(columns[MEDFEE]),
                    _cents_column(columns[FUND]), _cents_column(columns[ACCT]), columns[REFD], strict=True)
        yield "\n".join(map("\t".join, lines)) + "\n"


#: an amount already as money() writes it (the HIS's usual 2 decimals, no leading zeros)
_CENTS = re.compile(r"-?(?:0|[1-9][0-9]{0,13})\.[0-9]{2}")
#: a line of a column of amounts that is not written so (looked for in one call)
_NOT_CENTS_LINE = re.compile(rf"^(?!(?:{_CENTS.pattern})$)(.*)$", re.M)


def _cents(amount: str) -> str:
    """str(money(Decimal(amount))), without the Decimal where ``amount`` is written so already."""
    return amount if _CENTS.fullmatch(amount) else str(money(Decimal(amount)))


def _cents_column(amounts: list[str]) -> list[str]:
    """:func:`_cents` of each amount: the column is looked at in one call, and only the amounts
    not written as money() writes them (a few, usually) go through a Decimal. No amount holds a
    line break (each is the text of a Decimal), so a line is an amount."""
    joined = "\n".join(amounts)
    rewritten = _NOT_CENTS_LINE.sub(lambda line: _cents(line.group(1)), joined)
    return amounts if rewritten == joined else rewritten.split("\n")


def place(pairs: list[PairResult], differences: list[Difference], mine: Iterable[Settlement]) -> list[PairResult]:
    """Put each difference of one clearing agency x clearing type (one 3202) under the one
    group it belongs to, and return the groups this adds.

    A difference names its insurance type when the HIS holds the settlement. One only the
    centre has names none (result.txt has no insurance type): it belongs to the group of the
    same stay, or else the same person, among the HIS's settlements of this clearing type;
    failing that, to the one group that does not balance and that no other difference
    explains. Where that still leaves a choice it goes under the first of them, its detail
    saying which others it could belong to. A difference of an insurance type the HIS has no
    group of gets a group of its own (one per insurance type)."""
    by_type = {p.insutype: p for p in pairs}
    for pair in pairs:
        pair.differences = []
    added: list[PairResult] = []
    unnamed = []
    for diff in differences:
        if not diff.insutype:
            unnamed.append(diff)
            continue
        if diff.insutype not in by_type:  # the centre has settlements of an insurance type the HIS has none of
            setl_optins, clr_type = pairs[0].setl_optins, pairs[0].clr_type
            by_type[diff.insutype] = PairResult(setl_optins, diff.insutype, clr_type, asdict(Totals()), "1",
                                                "only at the centre")
            added.append(by_type[diff.insutype])
        by_type[diff.insutype].differences.append(diff)
    held = list(mine)
    explained = {p.insutype for p in pairs if p.differences}
    for diff in unnamed:
        insutype = _same_visit_or_person(diff, held)
        if insutype in by_type:
            diff.insutype = insutype
            by_type[insutype].differences.append(diff)
            continue
        unbalanced = [p for p in pairs if not p.balanced] or pairs
        candidates = [p for p in unbalanced if p.insutype not in explained] or unbalanced
        if len(candidates) == 1:
            diff.insutype = candidates[0].insutype
        else:
            diff.detail += ("; the centre names no insurance type: listed under the first of "
                            f"{', '.join(p.insutype for p in candidates)}, which do not balance")
        candidates[0].differences.append(diff)
    return added


def _same_visit_or_person(diff: Difference, held: list[Settlement]) -> str:
    """The insurance type of the HIS's settlements of the same stay, or else of the same
    person, where they all have one; "" otherwise."""
    for key in ("mdtrt_id", "psn_no"):
        value = getattr(diff, key)
        types = {s.insutype for s in held if value and getattr(s, key) == value}
        if len(types) == 1:
            return types.pop()
    return ""


def _local(total: Totals) -> dict[str, str]:
    """The hospital's figures of a group as the report shows them (amounts with two decimals)."""
    amounts = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "cash_payamt")
    return {k: str(money(v)) if k in amounts else str(v) for k, v in asdict(total).items()}


def _parse_result(text: str) -> list[dict[str, str]]:
    rows = []
    for line in text.splitlines():
        if line.strip():
            fields = line.split("\t") + [""] * len(RESULT_COLUMNS)
            rows.append(dict(zip(RESULT_COLUMNS, (f.strip() for f in fields[: len(RESULT_COLUMNS)]), strict=True)))
    return rows


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip()) if str(value).strip() not in ("", "null") else None
    except InvalidOperation:
        return None


def _msgid(s: Settlement) -> str:
    """The settlement's msgid as the HIS kept it (a plain Settlement has none)."""
    return str(getattr(s, "msgid", "") or "")


def classify(mine: Iterable[Settlement], result: list[dict[str, str]], ours: Mapping[str, str]) -> list[Difference]:
    """Compare result.txt with what the hospital sent; every difference says what and by how much.

    A result row names its settlement by setl_id, or, where the centre holds several details
    for one settlement (the interface then leaves setl_id and mdtrt_id empty), by the
    settlement's msgid, which the HIS's msgid column links back to the hospital's setl_id."""
    local: dict[str, list[Settlement]] = defaultdict(list)
    by_msgid: dict[str, Settlement] = {}
    for s in mine:
        local[s.setl_id].append(s)
        if _msgid(s):
            by_msgid.setdefault(_msgid(s), s)
    out: list[Difference] = []
    for setl_id, rows in local.items():
        if len(rows) > 1:
            out.append(Difference(setl_id, "duplicate", f"setl_id {setl_id} is {len(rows)} times in the HIS",
                                  rows[0].insutype, rows[0].mdtrt_id, rows[0].psn_no, setl_msgid=_msgid(rows[0]),
                                  our_msgid=ours.get(setl_id, "")))

    def key(row: dict[str, str]) -> str:
        if row["setl_id"]:
            return row["setl_id"]
        named = by_msgid.get(row["msgid"]) if row["msgid"] else None
        return named.setl_id if named is not None else ""

    repeated = Counter(key(r) for r in result)
    for row in result:
        setl_id = key(row)
        held = local.get(setl_id) if setl_id else None
        base = dict(mdtrt_id=row["mdtrt_id"] or (held[0].mdtrt_id if held else ""), psn_no=row["psn_no"],
                    centre_msgid=row["msgid"], setl_msgid=_msgid(held[0]) if held else "",
                    our_msgid=ours.get(setl_id, "") if setl_id else "")
        if not setl_id:  # neither a setl_id nor a msgid the HIS knows
            out.append(Difference("", "only_centre", f"only at the centre (msgid {row['msgid'] or '-'}, psn_no "
                                  f"{row['psn_no'] or '-'}): {row['memo']}".rstrip(": "), centre=row["medfee_sumamt"],
                                  **base))
            continue
        if repeated[setl_id] > 1:
            where = (f"setl_id {setl_id}" if row["setl_id"]
                     else f"the settlement msgid {row['msgid']} (setl_id {setl_id})")
            out.append(Difference(setl_id, "duplicate", f"{where} is {repeated[setl_id]} times at the centre",
                                  held[0].insutype if held else "", **base))
            repeated[setl_id] = -1  # reported once; its other rows are skipped
            continue
        if repeated[setl_id] < 0:
            continue
        if not held:
            out.append(Difference(setl_id, "only_centre", f"only at the centre: {row['memo']}".rstrip(": "),
                                  centre=row["medfee_sumamt"], **base))
            continue
        s = held[0]
        found = False
        for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay"):
            theirs, ours_value = _money(row[name]), getattr(s, name)
            if row["stmt_rslt"] == "2":
                break
            if theirs is not None and theirs != ours_value:
                found = True
                out.append(Difference(setl_id, "amount", f"{name} differs: HIS {ours_value}, centre {theirs} "
                                      f"(centre - HIS = {theirs - ours_value})", s.insutype, field_name=name,
                                      hospital=str(ours_value), centre=str(theirs), delta=str(theirs - ours_value),
                                      **base))
        if row["refd_setl_flag"] and row["refd_setl_flag"] != s.refd_setl_flag and row["stmt_rslt"] != "2":
            found = True
            out.append(Difference(setl_id, "refund_flag", f"refund flag differs: HIS {s.refd_setl_flag}, centre "
                                  f"{row['refd_setl_flag']}", s.insutype, field_name="refd_setl_flag",
                                  hospital=s.refd_setl_flag, centre=row["refd_setl_flag"], **base))
        if row["stmt_rslt"] == "2" or (not found and row["stmt_rslt"] not in ("0", "3")):
            out.append(Difference(setl_id, "only_hospital", "only in the HIS: the centre has no such settlement",
                                  s.insutype, hospital=str(s.medfee_sumamt), **base))
    return out
