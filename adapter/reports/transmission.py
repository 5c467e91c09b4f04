"""The transmission compliance report (上传及时性): for every day and transaction of a period,
the records the HIS produced, how many reached the centre within the deadline the region sets
(``RegionProfile.deadline_for``), how many late and by how much, how many are still unsent
(and of those, already overdue) or parked and why, and the longest stretch with no successful
upload; each late, unsent or parked record traceable to its message, msgids and attempts, as
an inspection asks for.

When did the HIS produce a record? The deadline runs from the time the record itself gives:
the latest of its transaction's required time fields (2301 ``fee_ocur_time``, 2401
``begntime``, 2402 ``endtime``, 35xx the time of the move), or of its fee lines' (2204), or
else of its required date fields counted from the end of that day (4101 ``setl_end_date``,
3501 ``invdate``); a record with none (the cancels 2302/2205, 3507) runs from when the adapter
read it from the HIS (the ledger's ``created_at``). So a day the adapter was down shows as late
uploads, not as a quiet day. The HIS's times are the hospital's wall-clock time, and the state
database's are UTC: the report puts both in one zone, by default the machine's (the adapter
runs beside the HIS).

Uploaded means acknowledged by the centre (the message's ``acked_at``). The longest gap is
the longest stretch of the period (up to now) in which no message was acknowledged."""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import select

from adapter.plugin.api import RegionProfile, TransactionSpec
from adapter.reports.layout import Coded, Column, Hospital, Masthead, Table, duration_text, masthead, zone_text
from adapter.spool.states import RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks

#: how the report counts a record
ON_TIME, LATE, UNSENT, PARKED, WITHDRAWN = "on_time", "late", "unsent", "parked", "withdrawn"
STATES = {ON_TIME: "按时上传 on time", LATE: "迟报 late", UNSENT: "未上传 unsent", PARKED: "挂起 parked",
          WITHDRAWN: "已撤销 withdrawn"}
PARK_KINDS = {"malformed": "数据不可读 malformed", "unmapped": "未对照 unmapped", "invalid": "校验不通过 invalid",
              "rejected": "中心拒收 rejected"}
#: records produced in the period were read from the HIS after it began, less this much (a
#: HIS clock ahead of the adapter's): the ledger is read from there on
_SLACK = timedelta(days=1)
#: the page lists at most this many records and attempts (the workbook, CSV and JSON all)
PAGE_LIMIT = 500


@dataclass(frozen=True)
class Clock:
    """Where a transaction's records say when the HIS produced them."""

    #: the fields as the report names them ("fee_ocur_time", "feedetail.fee_ocur_time"); "":
    #: none, the ledger's created_at (when the adapter read the record) is used
    field: str = ""
    #: the HIS row's columns (or the child entries' keys) read
    columns: tuple[str, ...] = ()
    #: the child list they are read from, the latest of its entries; "" for the record itself
    node: str = ""
    #: dates without a time: the deadline runs from the end of the day
    whole_day: bool = False

    @property
    def text(self) -> str:
        return self.field or "读入时间 read from the HIS"


def clock_of(spec: TransactionSpec | None) -> Clock:
    """The record's required time fields, else its fee lines', else its required dates."""
    if spec is None:
        return Clock()
    times = [f.name for f in spec.fields if f.kind == "datetime" and f.required]
    if times:
        return Clock(", ".join(times), tuple(spec.his_columns.get(n, n) for n in times))
    child = next((c for c in spec.children if c.node == spec.fee_lines), None)
    times = [f.name for f in child.fields if f.kind == "datetime" and f.required] if child else []
    if child is not None and times:
        return Clock(", ".join(f"{child.node}.{n}" for n in times), tuple(times), child.node)
    days = [f.name for f in spec.fields if f.kind == "date" and f.required]
    if days:
        return Clock(", ".join(days), tuple(spec.his_columns.get(n, n) for n in days), whole_day=True)
    return Clock()


_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in _FORMATS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None


def produced_at(clock: Clock, raw: Mapping[str, Any], zone: tzinfo) -> datetime | None:
    """When the HIS produced the record, by ``clock``, in ``zone``; None when it does not say."""
    holders: Any = raw.get(clock.node) if clock.node else [raw]
    if isinstance(holders, str):
        try:
            holders = json.loads(holders)
        except ValueError:
            return None
    found = [m for h in holders or () if isinstance(h, Mapping) for c in clock.columns
             if (m := _moment(h.get(c))) is not None]
    if not found:
        return None
    latest = max(m.replace(tzinfo=zone) if m.tzinfo is None else m.astimezone(zone) for m in found)
    return datetime.combine(latest.date() + timedelta(days=1), time(), zone) if clock.whole_day else latest


@dataclass
class Attempt:
    msgid: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    http_status: int | None
    infcode: str
    err_msg: str

    def __str__(self) -> str:
        parts = [self.msgid, f"{self.started_at:%Y-%m-%d %H:%M:%S}", self.outcome or "-",
                 f"HTTP {self.http_status}" if self.http_status else "",
                 f"infcode {self.infcode}" if self.infcode else "", self.err_msg]
        return " ".join(p for p in parts if p)


@dataclass
class Item:
    """A record that was late, is unsent or is parked, with what traces it."""

    infno: str
    business_key: str
    state: str
    #: its status in the ledger (new, ready, queued, sent, parked)
    status: str
    produced_at: datetime
    clock: str
    due_at: datetime
    #: when the adapter read it from the HIS
    read_at: datetime
    uploaded_at: datetime | None
    #: late: how late it was acknowledged; unsent or parked: how far past its deadline it is now
    late_by: timedelta | None
    park_kind: str
    park_reason: str
    message_id: int | None
    msgid: str
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class DayCount:
    """One day x transaction: produced = on_time + late + unsent + parked + withdrawn."""

    day: date
    infno: str
    produced: int = 0
    on_time: int = 0
    late: int = 0
    unsent: int = 0
    #: unsent records past their deadline already
    overdue: int = 0
    parked: int = 0
    withdrawn: int = 0
    late_max: timedelta | None = None

    def add(self, state: str, late_by: timedelta | None) -> None:
        self.produced += 1
        setattr(self, state, getattr(self, state) + 1)
        if state == UNSENT and late_by is not None:
            self.overdue += 1
        if state == LATE and late_by is not None and (self.late_max is None or late_by > self.late_max):
            self.late_max = late_by


@dataclass
class Gap:
    """A stretch with no successful upload."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass
class TransmissionReport:
    start: date
    end: date
    region: str
    #: the zone every time is shown in
    zone: str
    now: datetime
    #: infno -> its name in the region's edition, deadline and clock, for every infno counted
    names: dict[str, str]
    deadlines: dict[str, timedelta]
    clocks: dict[str, str]
    counts: list[DayCount]
    items: list[Item]
    longest_gap: Gap | None
    day_gaps: dict[date, Gap | None]
    acknowledged: int = 0

    def total(self, state: str) -> int:
        return sum(getattr(c, state) for c in self.counts)


def _local(moment: datetime | None, zone: tzinfo) -> datetime | None:
    """A state-database time (naive UTC) in ``zone``."""
    return None if moment is None else moment.replace(tzinfo=UTC).astimezone(zone)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def build_report(store: StateStore, start: date, end: date, *, region: RegionProfile,
                 names: Mapping[str, str] | None = None, zone: tzinfo | None = None,
                 now: datetime | None = None) -> TransmissionReport:
    """Records the HIS produced on days ``start`` to ``end`` (inclusive, in ``zone``), and the
    acknowledgements of that period up to ``now``. ``names``: infno -> transaction name."""
    zone = zone or datetime.now().astimezone().tzinfo or UTC
    moment = (now or datetime.now(UTC)).astimezone(zone)
    lo, hi = datetime.combine(start, time(), zone), datetime.combine(end + timedelta(days=1), time(), zone)
    clocks: dict[str, Clock] = {}
    counts: dict[tuple[date, str], DayCount] = {}
    items: list[Item] = []
    record, message = schema.record, schema.message
    query = (select(record.c.infno, record.c.business_key, record.c.status, record.c.park_kind,
                    record.c.park_reason, record.c.raw, record.c.message_id, record.c.created_at,
                    record.c.updated_at, message.c.acked_at, message.c.last_msgid)
             .outerjoin(message, message.c.id == record.c.message_id)
             .where(record.c.created_at >= _utc(lo) - _SLACK).order_by(record.c.id))
    with store.begin() as conn:
        for row in conn.execute(query.execution_options(yield_per=2000)):
            clock = clocks.get(row.infno)
            if clock is None:
                clock = clocks[row.infno] = clock_of(region.transactions.get(row.infno))
            read_at = _local(row.created_at, zone)
            assert read_at is not None  # created_at is NOT NULL
            his_time = produced_at(clock, _raw(row.raw), zone) if clock.field else None
            produced = his_time or read_at
            if not lo <= produced < hi:
                continue
            due = produced + region.deadline_for(row.infno)
            uploaded = _local(row.acked_at or row.updated_at, zone) if row.status == RecordStatus.SENT else None
            state, late_by = _state(row.status, due, uploaded, moment)
            counts.setdefault((produced.date(), row.infno), DayCount(produced.date(), row.infno)).add(state, late_by)
            if state in (LATE, UNSENT, PARKED):
                items.append(Item(row.infno, row.business_key, state, row.status, produced,
                                  clock.text if his_time else Clock().text, due, read_at,
                                  uploaded, late_by, row.park_kind or "", row.park_reason or "", row.message_id,
                                  row.last_msgid or ""))
        _attempts(conn, items, zone)
        acks = sorted(a for (a,) in conn.execute(select(message.c.acked_at).where(
            message.c.acked_at >= _utc(lo), message.c.acked_at < _utc(min(hi, moment)))))
    acked = [a.replace(tzinfo=UTC).astimezone(zone) for a in acks]
    infnos = sorted({infno for _, infno in counts})
    return TransmissionReport(
        start, end, region.name, zone_text(moment), moment, {i: (names or {}).get(i, "") for i in infnos},
        {i: region.deadline_for(i) for i in infnos}, {i: clocks[i].text for i in infnos},
        sorted(counts.values(), key=lambda c: (c.day, c.infno)),
        sorted(items, key=lambda i: (i.produced_at, i.infno, i.business_key)),
        _longest(lo, min(hi, moment), acked),
        {day: _longest(begin, min(begin + timedelta(days=1), moment), acked)
         for day, begin in _days(start, end, zone)},
        len(acked),
    )


def _raw(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _state(status: str, due: datetime, uploaded: datetime | None, now: datetime) -> tuple[str, timedelta | None]:
    """How the report counts a record, and how late it is (None: not late, or not yet due)."""
    if status == RecordStatus.WITHDRAWN:
        return WITHDRAWN, None
    if status == RecordStatus.SENT and uploaded is not None:
        return (ON_TIME, None) if uploaded <= due else (LATE, uploaded - due)
    overdue = now - due if now > due else None
    return (PARKED if status == RecordStatus.PARKED else UNSENT), overdue


def _attempts(conn: Any, items: list[Item], zone: tzinfo) -> None:
    """Every attempt of the items' messages, oldest first, on each item."""
    ids = sorted({i.message_id for i in items if i.message_id is not None})
    found: dict[int, list[Attempt]] = {}
    attempt = schema.attempt
    for chunk in in_chunks(ids):
        for row in conn.execute(select(attempt).where(attempt.c.message_id.in_(chunk))
                                .order_by(attempt.c.started_at, attempt.c.msgid)):
            started = _local(row.started_at, zone)
            assert started is not None  # started_at is NOT NULL
            found.setdefault(row.message_id, []).append(Attempt(
                row.msgid, started, _local(row.finished_at, zone), row.outcome or "", row.http_status,
                row.infcode or "", row.err_msg or ""))
    for item in items:
        if item.message_id is not None:
            item.attempts = found.get(item.message_id, [])


def _days(start: date, end: date, zone: tzinfo) -> Iterable[tuple[date, datetime]]:
    day = start
    while day <= end:
        yield day, datetime.combine(day, time(), zone)
        day += timedelta(days=1)


def _longest(lo: datetime, hi: datetime, acked: Sequence[datetime]) -> Gap | None:
    """The longest stretch of [lo, hi) between acknowledgements (None: the stretch is empty,
    in the future)."""
    if hi <= lo:
        return None
    inside = acked[bisect.bisect_left(acked, lo):bisect.bisect_left(acked, hi)]
    marks = [lo, *inside, hi]
    best = max(itertools.pairwise(marks), key=lambda pair: pair[1] - pair[0])
    return Gap(*best)


# -- output -------------------------------------------------------------------------------------
def _transaction(report: TransmissionReport, infno: str) -> Coded:
    return Coded(infno, report.names.get(infno, ""))


_COUNTS = (Column("产生", "Produced", "count", total=True), Column("按时上传", "On time", "count", total=True),
           Column("迟报", "Late", "count", total=True), Column("未上传", "Unsent", "count", total=True),
           Column("其中已超时", "of which overdue", "count", total=True),
           Column("挂起", "Parked", "count", total=True), Column("已撤销", "Withdrawn", "count", total=True))


def _gap_text(gap: Gap | None) -> str:
    if gap is None:
        return "—"
    return f"{duration_text(gap.length)} ({gap.start:%Y-%m-%d %H:%M} – {gap.end:%Y-%m-%d %H:%M})"


def tables(report: TransmissionReport) -> list[Table]:
    """By day, by day and transaction, the late/unsent/parked records, their attempts."""
    by_day: dict[date, list[int]] = {day: [0] * 7 for day in report.day_gaps}
    states = ("produced", "on_time", "late", "unsent", "overdue", "parked", "withdrawn")
    for count in report.counts:
        row = by_day.setdefault(count.day, [0] * 7)
        for index, name in enumerate(states):
            row[index] += getattr(count, name)
    days = Table(
        "by-day", "按日", "按日", "By day",
        (Column("日期", "Day", "date"), *_COUNTS, Column("最长无上传", "Longest gap without an upload", "hours"),
         Column("自", "From", "datetime"), Column("至", "To", "datetime")),
        [[day, *values, *((gap.length, gap.start, gap.end) if (gap := report.day_gaps.get(day)) else
                          (None, None, None))] for day, values in sorted(by_day.items())],
        note="按 HIS 产生记录的日期计；最长无上传为当日内中心未确认任何报文的最长时段。Days the HIS produced the "
             "records on; the longest gap is the longest stretch of the day in which the centre acknowledged nothing.",
        marks=["bad" if values[2] or values[4] or values[5] else "" for _, values in sorted(by_day.items())],
    )
    per = Table(
        "by-transaction", "按日按交易", "按日按交易", "By day and transaction",
        (Column("日期", "Day", "date"), Column("交易", "Transaction", "code"),
         Column("时限", "Deadline", "hours"), Column("计时依据", "Deadline runs from"), *_COUNTS[:3],
         Column("最长迟到", "Latest by", "hours"), *_COUNTS[3:]),
        [[c.day, _transaction(report, c.infno), report.deadlines[c.infno], report.clocks[c.infno], c.produced,
          c.on_time, c.late, c.late_max, c.unsent, c.overdue, c.parked, c.withdrawn] for c in report.counts],
        marks=["bad" if c.late or c.overdue or c.parked else "" for c in report.counts],
    )
    items = Table(
        "items", "迟报未报明细", "迟报、未上传与挂起的记录", "Late, unsent and parked records",
        (Column("交易", "Transaction", "code"), Column("记录", "Record (business key)", "id"),
         Column("情况", "State", "code"), Column("HIS时间", "Produced in the HIS", "datetime"),
         Column("截止", "Due", "datetime"), Column("上传时间", "Acknowledged", "datetime"),
         Column("迟到/超时", "Late or overdue by", "hours"), Column("读入时间", "Read from the HIS", "datetime"),
         Column("挂起类别", "Parked as", "code"), Column("原因", "Reason", wrap=True),
         Column("报文", "Message", "id"), Column("末次报文ID", "Last msgid", "id"),
         Column("尝试次数", "Attempts", "count"), Column("尝试记录", "Attempts (msgid, time, outcome)", wrap=True)),
        [[_transaction(report, i.infno), i.business_key, Coded(i.state, STATES[i.state]), i.produced_at, i.due_at,
          i.uploaded_at, i.late_by, i.read_at, Coded(i.park_kind, PARK_KINDS.get(i.park_kind, "")) if i.park_kind
          else None, i.park_reason, "" if i.message_id is None else str(i.message_id), i.msgid, len(i.attempts),
          "; ".join(str(a) for a in i.attempts)] for i in report.items],
        note="每条迟报、未上传或挂起的记录，及其报文与每次尝试。Every record late, unsent or parked, with its message "
             "and every attempt.",
        page_limit=PAGE_LIMIT,
    )
    attempts = Table(
        "attempts", "尝试", "报文尝试", "Attempts of those records' messages",
        (Column("报文", "Message", "id"), Column("交易", "Transaction", "code"), Column("报文ID", "msgid", "id"),
         Column("开始", "Started", "datetime"), Column("结束", "Finished", "datetime"),
         Column("结果", "Outcome", "id"), Column("HTTP", "HTTP status", "id"), Column("infcode", "infcode", "id"),
         Column("错误信息", "Error", wrap=True)),
        [[str(message_id), _transaction(report, infno), a.msgid, a.started_at, a.finished_at, a.outcome,
          a.http_status, a.infcode, a.err_msg] for message_id, infno, a in _message_attempts(report.items)],
        page_limit=PAGE_LIMIT,
    )
    return [days, per, items, attempts]


def _message_attempts(items: Iterable[Item]) -> list[tuple[int, str, Attempt]]:
    """Each message's attempts once (a message carries several records)."""
    seen: dict[int, tuple[str, list[Attempt]]] = {}
    for item in items:
        if item.message_id is not None:
            seen.setdefault(item.message_id, (item.infno, item.attempts))
    return [(message_id, infno, a) for message_id, (infno, attempts) in sorted(seen.items()) for a in attempts]


def _head(report: TransmissionReport, hospital: Hospital | None) -> Masthead:
    return masthead("医保数据上传及时性报告", "Transmission compliance", hospital, report.start, report.end, [
        ("统筹区域", "Region", report.region),
        ("时区", "Times in", report.zone),
        ("产生记录", "Records produced", f"{report.total('produced'):,}"),
        ("按时上传", "On time", f"{report.total('on_time'):,}"),
        ("迟报", "Late", f"{report.total('late'):,}"),
        ("未上传（已超时）", "Unsent (overdue)", f"{report.total('unsent'):,} ({report.total('overdue'):,})"),
        ("挂起", "Parked", f"{report.total('parked'):,}"),
        ("最长无上传", "Longest gap without an upload", _gap_text(report.longest_gap)),
    ], now=report.now)


def as_html(report: TransmissionReport, hospital: Hospital | None = None) -> str:
    from adapter.html_page import render

    return render("transmission.html", _head(report, hospital), tables=tables(report), report=report)


def as_xlsx(report: TransmissionReport, hospital: Hospital | None = None) -> bytes:
    from adapter.reports.workbook import workbook

    return workbook(_head(report, hospital), tables(report))


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return round(value.total_seconds() / 3600, 2)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value


def as_csv(report: TransmissionReport) -> str:
    """The day x transaction counts, then the late, unsent and parked records (codes and their
    labels in columns of their own, durations in hours, times with their offset)."""
    out = io.StringIO()
    writer = csv.writer(out)
    for index, table in enumerate(tables(report)[1:3]):
        if index:
            writer.writerow([])
        header: list[str] = []
        for column in table.columns:
            unit = "(小时 hours)" if column.kind == "hours" else ""
            header.append(f"{column.zh}{unit} {column.en}")
            if column.kind == "code":
                header.append(f"{column.zh}名称 {column.en} (label)")
        writer.writerow(header)
        for row in table.rows:
            cells: list[Any] = []
            for column, value in zip(table.columns, row, strict=True):
                if column.kind == "code":
                    cells += [value.code, value.label] if isinstance(value, Coded) else ["", ""]
                else:
                    cells.append(_plain(value))
            writer.writerow(cells)
    return out.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def as_json(report: TransmissionReport) -> dict[str, Any]:
    """The whole report; durations in seconds, times ISO 8601 with their offset."""
    data = asdict(report)
    data["totals"] = {s: report.total(s) for s in ("produced", "on_time", "late", "unsent", "overdue", "parked",
                                                   "withdrawn")}
    for gap in [data["longest_gap"], *data["day_gaps"].values()]:
        if gap is not None:
            gap["length"] = (gap["end"] - gap["start"]).total_seconds()
    result: dict[str, Any] = _jsonable(data)
    return result
