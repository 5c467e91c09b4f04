"""What the state database says about the daemon's health, read in one go: per transaction the
queue (records and messages by state, the oldest unsent record, the head of the queue, the last
upload), parked records and rejections, the centre as the last requests found it (answering,
signing in, refusing our credentials), catalogue versions, the last reconciliations and the
state store's disk.

Everything comes from the database at the moment it is asked, never from one process's memory,
so the metrics of several daemons sharing a PostgreSQL spool, the status page and the CLI agree.
The queries use the indexes the spool already has (unsent states, park kinds, the newest
attempts by msgid); the one that reads every acknowledged message (the last upload per
transaction) is why callers cache a snapshot for a few seconds.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import make_url

from adapter.errors import StateStoreError
from adapter.spec.tables import Edition
from adapter.spool.states import UNSENT_MESSAGE_STATES, UNSENT_RECORD_STATES, MessageStatus, ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow

#: the newest attempts read to judge the centre and the sign-in
RECENT_ATTEMPTS = 50
#: rejection reasons shown by name (the rest are counted as "other"): a metric label must not
#: take every err_msg the centre can write
REJECTION_REASONS = 10
REASON_LENGTH = 60
SIGN_IN = "9001"

_UNSENT_RECORDS = tuple(s.value for s in UNSENT_RECORD_STATES)
_UNSENT_MESSAGES = tuple(s.value for s in UNSENT_MESSAGE_STATES)
_ANSWERED = ("ok", "rejected", "busy")
_HTTP = re.compile(r"HTTP (\d{3})")


@dataclass(frozen=True)
class Head:
    """The oldest unsent message of a transaction: what the rest of its queue waits behind."""

    message_id: int
    status: str
    created_at: datetime
    attempts: int
    last_error: str | None

    def age_seconds(self, now: datetime) -> float:
        return (now - self.created_at).total_seconds()


@dataclass
class TransactionFacts:
    infno: str
    name: str
    #: records by state, of the states that still matter (new, ready, queued, parked)
    records: dict[str, int] = field(default_factory=dict)
    #: messages by state, unsent ones and parked
    messages: dict[str, int] = field(default_factory=dict)
    #: attempts already made on the messages still unsent
    unsent_attempts: int = 0
    #: when the oldest record not yet acknowledged was read from the HIS
    oldest_unsent_at: datetime | None = None
    head: Head | None = None
    last_upload_at: datetime | None = None
    #: parked records by kind (malformed, unmapped, invalid, rejected)
    parked: dict[str, int] = field(default_factory=dict)

    @property
    def unsent_records(self) -> int:
        return sum(self.records.get(state, 0) for state in _UNSENT_RECORDS)

    @property
    def parked_records(self) -> int:
        return self.records.get(RecordStatus.PARKED.value, 0)


@dataclass(frozen=True)
class AttemptFacts:
    msgid: str
    infno: str
    outcome: str
    http_status: int | None
    err_msg: str
    finished_at: datetime

    @property
    def answered(self) -> bool:
        """The centre (not a gateway before it, not the network) read it and answered."""
        return self.outcome in _ANSWERED

    @property
    def credentials_refused(self) -> bool:
        return self.http_status == 401

    @property
    def unreachable(self) -> bool:
        """No centre: no connection, no reply in time, or HTTP 5xx. A 4xx is a gateway that
        answered (credentials, signature, clock): reachable, and its own cause."""
        return not self.answered and not (self.http_status is not None and 400 <= self.http_status < 500)


@dataclass
class CentreFacts:
    """The centre as the newest attempts found it."""

    #: when the cached 9001 session was opened (None: not signed in)
    signed_in_at: datetime | None = None
    #: newest first, at most RECENT_ATTEMPTS
    attempts: list[AttemptFacts] = field(default_factory=list)

    @property
    def last_answer_at(self) -> datetime | None:
        return next((a.finished_at for a in self.attempts if a.answered), None)

    @property
    def unreachable_in_a_row(self) -> int:
        """Requests in a row, newest first, that found no centre."""
        count = 0
        for attempt in self.attempts:
            if not attempt.unreachable:
                break
            count += 1
        return count

    @property
    def sign_in_problem(self) -> AttemptFacts | None:
        """The attempt that says signing in does not work, since the last one that worked: a
        gateway refusing our credentials (HTTP 401, on any request), or 9001 refused."""
        for attempt in self.attempts:
            if attempt.outcome == "ok":
                return None
            if attempt.credentials_refused or (attempt.infno == SIGN_IN and attempt.outcome == "rejected"):
                return attempt
        return None

    @property
    def sign_in_cause(self) -> str | None:
        """``credentials`` (HTTP 401), ``refused`` (9001 refused by the centre), or None."""
        problem = self.sign_in_problem
        if problem is None:
            return None
        return "credentials" if problem.credentials_refused else "refused"


@dataclass(frozen=True)
class CatalogFacts:
    kind: str
    ver: str
    rows: int
    activated_at: datetime | None


@dataclass(frozen=True)
class ReconcileFacts:
    run_id: int
    kind: str
    start: str
    end: str
    balanced: bool
    pairs: int
    differences: int
    created_at: datetime
    #: the pairs that do not balance (setl_optins, insutype, clr_type, stmt_rslt), of a run that does not
    unbalanced: tuple[dict[str, str], ...] = ()

    @property
    def period(self) -> str:
        return self.start if self.start == self.end else f"{self.start} – {self.end}"


@dataclass(frozen=True)
class DiskFacts:
    path: str
    free_bytes: int
    total_bytes: int

    @property
    def free_share(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 1.0


@dataclass(frozen=True)
class Unknown:
    message_id: int
    infno: str
    created_at: datetime
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class ParkedReason:
    infno: str
    kind: str
    reason: str
    records: int


@dataclass
class Snapshot:
    taken_at: datetime
    transactions: dict[str, TransactionFacts] = field(default_factory=dict)
    #: (infno, reason, records) of records the centre rejected; at most REJECTION_REASONS reasons by
    #: name, shortened, and "other"
    rejections: list[tuple[str, str, int]] = field(default_factory=list)
    #: the commonest reasons of parked records, with their transaction and kind
    parked_reasons: list[ParkedReason] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    centre: CentreFacts = field(default_factory=CentreFacts)
    catalogs: list[CatalogFacts] = field(default_factory=list)
    #: the newest run of each kind (day, month, range)
    reconciliations: list[ReconcileFacts] = field(default_factory=list)
    disk: DiskFacts | None = None

    @property
    def parked_records(self) -> int:
        return sum(t.parked_records for t in self.transactions.values())


def read_snapshot(store: StateStore, infnos: Sequence[str] = (), edition: Edition | None = None,
                  limit: int = 20) -> Snapshot:
    """The facts as the database holds them now. ``infnos``: transactions listed even when
    nothing of theirs is stored yet; ``edition`` names them."""
    snapshot = Snapshot(taken_at=utcnow())
    message, record, attempt = schema.message, schema.record, schema.attempt

    def facts(infno: str) -> TransactionFacts:
        if infno not in snapshot.transactions:
            table = edition.transactions.get(infno) if edition is not None else None
            snapshot.transactions[infno] = TransactionFacts(infno, table.name if table is not None else "")
        return snapshot.transactions[infno]

    for infno in infnos:
        facts(infno)
    with store.begin() as conn:
        for row in conn.execute(
            select(record.c.infno, record.c.status, func.count().label("n"),
                   func.min(record.c.created_at).label("first"))
            .where(record.c.status.in_([*_UNSENT_RECORDS, RecordStatus.PARKED.value]))
            .group_by(record.c.infno, record.c.status)
        ).all():
            item = facts(row.infno)
            item.records[row.status] = int(row.n)
            if row.status in _UNSENT_RECORDS and row.first is not None and (
                    item.oldest_unsent_at is None or row.first < item.oldest_unsent_at):
                item.oldest_unsent_at = row.first
        for row in conn.execute(
            select(record.c.infno, record.c.park_kind, func.count().label("n"))
            .where(record.c.status == RecordStatus.PARKED.value)
            .group_by(record.c.infno, record.c.park_kind)
        ).all():
            facts(row.infno).parked[row.park_kind or "?"] = int(row.n)
        heads: list[int] = []
        for row in conn.execute(
            select(message.c.infno, message.c.status, func.count().label("n"),
                   func.coalesce(func.sum(message.c.attempts), 0).label("tries"), func.min(message.c.id).label("first"))
            .where(message.c.status.in_([*_UNSENT_MESSAGES, MessageStatus.PARKED.value]))
            .group_by(message.c.infno, message.c.status)
        ).all():
            item = facts(row.infno)
            item.messages[row.status] = int(row.n)
            if row.status in _UNSENT_MESSAGES:
                item.unsent_attempts += int(row.tries)
                heads.append(int(row.first))
        if heads:
            for row in conn.execute(
                select(message.c.id, message.c.infno, message.c.status, message.c.created_at, message.c.attempts,
                       message.c.last_error).where(message.c.id.in_(heads))
            ).all():
                item = facts(row.infno)
                head = Head(row.id, row.status, row.created_at, int(row.attempts), row.last_error)
                if item.head is None or head.message_id < item.head.message_id:
                    item.head = head
        for row in conn.execute(
            select(message.c.infno, func.max(message.c.acked_at).label("last"))
            .where(message.c.status == MessageStatus.ACKED.value)
            .group_by(message.c.infno)
        ).all():
            facts(row.infno).last_upload_at = row.last
        snapshot.rejections = _rejections(conn)
        snapshot.parked_reasons = [
            ParkedReason(row.infno, row.park_kind or "?", row.park_reason or "", int(row.n))
            for row in conn.execute(
                select(record.c.infno, record.c.park_kind, record.c.park_reason, func.count().label("n"))
                .where(record.c.status == RecordStatus.PARKED.value)
                .group_by(record.c.infno, record.c.park_kind, record.c.park_reason)
                .order_by(func.count().desc(), record.c.infno)
                .limit(limit)
            ).all()
        ]
        snapshot.unknown = [
            Unknown(row.id, row.infno, row.created_at, int(row.attempts), row.last_error)
            for row in conn.execute(
                select(message.c.id, message.c.infno, message.c.created_at, message.c.attempts, message.c.last_error)
                .where(message.c.status == MessageStatus.UNKNOWN.value)
                .order_by(message.c.id).limit(limit)
            ).all()
        ]
        snapshot.centre.signed_in_at = conn.execute(select(func.max(schema.session.c.signed_at))).scalar()
        snapshot.centre.attempts = [
            AttemptFacts(row.msgid, row.infno, row.outcome or "", _status(row.http_status, row.err_msg),
                         row.err_msg or "", row.finished_at)
            for row in conn.execute(
                select(attempt.c.msgid, attempt.c.infno, attempt.c.outcome, attempt.c.http_status, attempt.c.err_msg,
                       attempt.c.finished_at)
                .order_by(attempt.c.msgid.desc()).limit(RECENT_ATTEMPTS)
            ).all()
            if row.finished_at is not None
        ]
        version = schema.catalog_version
        snapshot.catalogs = [
            CatalogFacts(row.kind, row.ver, int(row.rows_total), row.activated_at)
            for row in conn.execute(
                select(version.c.kind, version.c.ver, version.c.rows_total, version.c.activated_at)
                .where(version.c.status == "active").order_by(version.c.kind)
            ).all()
        ]
        run = schema.recon_run
        seen: set[str] = set()
        for row in conn.execute(
            select(run.c.id, run.c.kind, run.c.start_date, run.c.end_date, run.c.balanced, run.c.pairs,
                   run.c.differences, run.c.created_at).order_by(run.c.id.desc()).limit(limit)
        ).all():
            if row.kind not in seen:
                seen.add(row.kind)
                snapshot.reconciliations.append(ReconcileFacts(
                    row.id, row.kind, row.start_date, row.end_date, bool(row.balanced), int(row.pairs),
                    int(row.differences), row.created_at,
                    () if row.balanced else _unbalanced(conn.execute(
                        select(run.c.report).where(run.c.id == row.id)).scalar())))
    snapshot.disk = disk_facts(store)
    return snapshot


def _rejections(conn: Connection) -> list[tuple[str, str, int]]:
    record = schema.record
    rows = conn.execute(
        select(record.c.infno, record.c.park_reason, func.count().label("n"))
        .where(record.c.status == RecordStatus.PARKED.value, record.c.park_kind == ParkKind.REJECTED.value)
        .group_by(record.c.infno, record.c.park_reason)
    ).all()
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.park_reason or ""] = totals.get(row.park_reason or "", 0) + int(row.n)
    named = {reason for reason, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:REJECTION_REASONS]}
    counted: dict[tuple[str, str], int] = {}
    for row in rows:
        reason = short_reason(row.park_reason or "") if (row.park_reason or "") in named else "other"
        counted[(row.infno, reason)] = counted.get((row.infno, reason), 0) + int(row.n)
    return [(infno, reason, n) for (infno, reason), n in sorted(counted.items())]


def _unbalanced(report: str | None) -> tuple[dict[str, str], ...]:
    """The pairs of a stored reconciliation report that do not balance."""
    try:
        pairs = json.loads(report or "{}").get("pairs", [])
    except (ValueError, AttributeError):
        return ()
    return tuple({key: str(pair.get(key, "")) for key in ("setl_optins", "insutype", "clr_type", "stmt_rslt")}
                 for pair in pairs if isinstance(pair, dict) and not pair.get("balanced", True))


def short_reason(reason: str) -> str:
    """A rejection reason as a label: one line, at most REASON_LENGTH characters."""
    line = " ".join(reason.split()) or "(none)"
    return line if len(line) <= REASON_LENGTH else line[:REASON_LENGTH - 1] + "…"


def _status(http_status: int | None, err_msg: str | None) -> int | None:
    """The HTTP status of an attempt: recorded, or else the one its error names (a gateway
    refusal is recorded with its message only)."""
    if http_status is not None:
        return int(http_status)
    found = _HTTP.search(err_msg or "")
    return int(found.group(1)) if found else None


def disk_facts(store: StateStore) -> DiskFacts | None:
    """Free space where a SQLite state database lives (None for a server database: its disk is
    the database server's to watch)."""
    url = make_url(store.url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    folder = Path(database).resolve().parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    return DiskFacts(str(folder), usage.free, usage.total)


def state_store_reachable(store: StateStore) -> str | None:
    """None when the state store answers a trivial query, else why not."""
    try:
        with store.begin() as conn:
            conn.execute(text("SELECT 1"))
    except StateStoreError as exc:
        return str(exc)
    return None


def plain_error(attempt: AttemptFacts) -> tuple[str, str]:
    """What went wrong with an attempt, for people: (Chinese, English)."""
    status = attempt.http_status
    said = attempt.err_msg.strip()
    if attempt.outcome == "rejected":
        return f"中心拒收：{said}", f"the centre refused it: {said}"
    if attempt.outcome == "busy":
        return "中心繁忙，稍后重试", f"the centre was busy and will be asked again ({said or 'no message'})"
    if status == 401:
        return ("网关拒绝了本院的凭据（HTTP 401）",
                "the gateway refused our credentials (HTTP 401): check [centre.credentials]")
    if status is not None and 400 <= status < 500:
        return (f"网关拒绝请求（HTTP {status}）", f"the gateway refused the request (HTTP {status}): signature, "
                "clock or address")
    if status is not None and status >= 500:
        return f"中心服务器出错（HTTP {status}）", f"the centre's server failed (HTTP {status})"
    if said.startswith("connection failed"):
        return "连不上中心", "could not connect to the centre (network, front-end processor or address)"
    if "timeout" in said or said.startswith("no reply"):
        return "中心在超时前未应答", "no answer within the timeout; what the centre did is asked before any resend"
    if said.startswith("connection lost"):
        return "发送后连接中断", "the connection broke after sending; what the centre did is asked before any resend"
    return "发送失败", said or attempt.outcome
