"""What a person reads in the spool: messages and records listed by state, transaction and day;
one message as it was sent (its payload, every attempt with the centre's answer, the records it
carries); one record with its HIS row; and a search by msgid, visit, settlement id or patient.

Read only. Times are naive UTC, as stored; the command line shows them in local time. The
queries are plain SQLAlchemy Core and run on SQLite and PostgreSQL alike; payloads and HIS rows
come back unsealed (the store's keyring), and are never compared in SQL, so the search works
on a sealed spool too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import simplejson
from sqlalchemy import Connection, Select, func, select

from adapter import jsonio
from adapter.spool.audit import AuditEntry, entries_naming
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks

_message, _record, _attempt = schema.message, schema.record, schema.attempt
#: the group of a visit (a stay or an outpatient visit) starts with this; see TransactionSpec.group_of
VISIT_GROUP = "visit:"
#: records read per query when the search goes through the visits for a patient number
_SCAN_CHUNK = 500
#: matches listed at most (the count says how many there are)
SEARCH_LIMIT = 200


@dataclass(frozen=True)
class MessageSummary:
    id: int
    infno: str
    status: str
    group_key: str
    records: int
    attempts: int
    created_at: datetime
    acked_at: datetime | None
    next_attempt_at: datetime | None
    last_msgid: str | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordSummary:
    id: int
    infno: str
    status: str
    business_key: str
    group_key: str
    park_kind: str | None
    park_reason: str | None
    message_id: int | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttemptView:
    """One send of a message: the msgid it went with and what came back."""

    msgid: str
    infno: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    http_status: int | None
    infcode: str | None
    err_msg: str | None
    inf_refmsgid: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MessageDetail:
    message: MessageSummary
    #: the business input as spooled, and as every attempt sent it (envelopes are built per attempt)
    payload: Any
    inf_refmsgid: str | None
    attempts: list[AttemptView] = field(default_factory=list)
    records: list[RecordSummary] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message.as_dict(), "payload": self.payload, "inf_refmsgid": self.inf_refmsgid,
                "attempts": [a.as_dict() for a in self.attempts], "records": [r.as_dict() for r in self.records],
                "audit": [asdict(e) for e in self.audit]}


@dataclass
class RecordDetail:
    record: RecordSummary
    #: the HIS row as extracted
    raw: Any
    #: the transaction input built from it once it passed its checks (None before)
    payload: Any
    message: MessageSummary | None = None
    attempts: list[AttemptView] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record.as_dict(), "raw": self.raw, "payload": self.payload,
                "message": self.message.as_dict() if self.message else None,
                "attempts": [a.as_dict() for a in self.attempts], "audit": [asdict(e) for e in self.audit]}


@dataclass
class Listing:
    """A page of messages or records, newest first, and how many match in all."""

    total: int
    messages: list[MessageSummary] = field(default_factory=list)
    records: list[RecordSummary] = field(default_factory=list)


@dataclass
class SearchResult:
    text: str
    #: what the text was found as, in words ("msgid of an attempt of message 12", ...)
    matched: list[str] = field(default_factory=list)
    messages: list[MessageSummary] = field(default_factory=list)
    records: list[RecordSummary] = field(default_factory=list)
    #: how many records match in all (``records`` holds at most SEARCH_LIMIT)
    records_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "matched": self.matched, "messages": [m.as_dict() for m in self.messages],
                "records": [r.as_dict() for r in self.records], "records_total": self.records_total}


_MESSAGE_COLUMNS = (_message.c.id, _message.c.infno, _message.c.status, _message.c.group_key, _message.c.line_count,
                    _message.c.attempts, _message.c.created_at, _message.c.acked_at, _message.c.next_attempt_at,
                    _message.c.last_msgid, _message.c.last_error)
_RECORD_COLUMNS = (_record.c.id, _record.c.infno, _record.c.status, _record.c.business_key, _record.c.group_key,
                   _record.c.park_kind, _record.c.park_reason, _record.c.message_id, _record.c.created_at,
                   _record.c.updated_at)


def _message_summary(row: Any) -> MessageSummary:
    return MessageSummary(row.id, row.infno, row.status, row.group_key, int(row.line_count), int(row.attempts),
                          row.created_at, row.acked_at, row.next_attempt_at, row.last_msgid, row.last_error)


def _record_summary(row: Any) -> RecordSummary:
    return RecordSummary(row.id, row.infno, row.status, row.business_key, row.group_key, row.park_kind,
                         row.park_reason, row.message_id, row.created_at, row.updated_at)


def _attempt_view(row: Any) -> AttemptView:
    return AttemptView(row.msgid, row.infno, row.started_at, row.finished_at, row.outcome, row.http_status,
                       row.infcode, row.err_msg, row.inf_refmsgid)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return jsonio.loads(text)
    except ValueError:
        return text  # kept as it is: a malformed HIS row is shown as it came


# -- listing -------------------------------------------------------------------------------
def list_messages(store: StateStore, *, state: MessageStatus | None = None, infno: str | None = None,
                  since: datetime | None = None, limit: int = 50) -> Listing:
    """Messages newest first (``since``: built at or after it, naive UTC)."""
    def where(query: Select[Any]) -> Select[Any]:
        if state is not None:
            query = query.where(_message.c.status == state.value)
        if infno is not None:
            query = query.where(_message.c.infno == infno)
        if since is not None:
            query = query.where(_message.c.created_at >= since)
        return query

    with store.begin() as conn:
        total = int(conn.execute(where(select(func.count()).select_from(_message))).scalar_one())
        rows = conn.execute(where(select(*_MESSAGE_COLUMNS)).order_by(_message.c.id.desc()).limit(limit)).all()
    return Listing(total, messages=[_message_summary(row) for row in rows])


def list_records(store: StateStore, *, state: RecordStatus | None = None, infno: str | None = None,
                 since: datetime | None = None, limit: int = 50) -> Listing:
    """Records newest first (``since``: changed at or after it, naive UTC)."""
    def where(query: Select[Any]) -> Select[Any]:
        if state is not None:
            query = query.where(_record.c.status == state.value)
        if infno is not None:
            query = query.where(_record.c.infno == infno)
        if since is not None:
            query = query.where(_record.c.updated_at >= since)
        return query

    with store.begin() as conn:
        total = int(conn.execute(where(select(func.count()).select_from(_record))).scalar_one())
        rows = conn.execute(where(select(*_RECORD_COLUMNS)).order_by(_record.c.id.desc()).limit(limit)).all()
    return Listing(total, records=[_record_summary(row) for row in rows])


# -- one message, one record ---------------------------------------------------------------
def _attempts(conn: Connection, message_id: int) -> list[AttemptView]:
    rows = conn.execute(select(_attempt).where(_attempt.c.message_id == message_id)
                        .order_by(_attempt.c.started_at, _attempt.c.msgid)).all()
    return [_attempt_view(row) for row in rows]


def show_message(store: StateStore, message_id: int) -> MessageDetail:
    """A message as it was sent; LookupError when there is none."""
    with store.begin() as conn:
        row = conn.execute(select(*_MESSAGE_COLUMNS, _message.c.payload, _message.c.inf_refmsgid)
                           .where(_message.c.id == message_id)).first()
        if row is None:
            raise LookupError(f"message {message_id} is not in the spool")
        detail = MessageDetail(_message_summary(row), _json(row.payload), row.inf_refmsgid, _attempts(conn, message_id))
        detail.records = [_record_summary(r) for r in conn.execute(
            select(*_RECORD_COLUMNS).where(_record.c.message_id == message_id).order_by(_record.c.id)).all()]
    detail.audit = entries_naming(store, "message", message_id)
    return detail


def show_record(store: StateStore, record_id: int) -> RecordDetail:
    """A record with its HIS row, and the message that carries it; LookupError when there is none."""
    with store.begin() as conn:
        row = conn.execute(select(*_RECORD_COLUMNS, _record.c.raw, _record.c.payload)
                           .where(_record.c.id == record_id)).first()
        if row is None:
            raise LookupError(f"record {record_id} is not in the spool")
        detail = RecordDetail(_record_summary(row), _json(row.raw), _json(row.payload))
        if row.message_id is not None:
            message = conn.execute(select(*_MESSAGE_COLUMNS).where(_message.c.id == row.message_id)).first()
            detail.message = _message_summary(message) if message is not None else None
            detail.attempts = _attempts(conn, row.message_id)
    detail.audit = entries_naming(store, "record", record_id)
    return detail


# -- search --------------------------------------------------------------------------------
def search(store: StateStore, text: str, infnos: Sequence[str] = ()) -> SearchResult:
    """Messages and records a person means by ``text``:

    - a msgid: the one this adapter sent an attempt with, or the centre's 接收方报文ID of an answer;
    - a visit: the HIS visit number its records are grouped by, or the mdtrt_id the centre gave it
      (2201/2401); every record and message of the visit;
    - a business key of ``infnos`` (a settlement list's setl_id, an admission's ipt_no...);
    - when none of these: a patient number (psn_no), through the stays the policy rules keep and
      the HIS row of each visit's first record (one row per visit is read, not every fee line).

    Every lookup but the patient number's goes through an index.
    """
    text = text.strip()
    result = SearchResult(text)
    message_ids: set[int] = set()
    groups: set[str] = set()
    record_ids: set[int] = set()
    with store.begin() as conn:
        for row in conn.execute(select(_attempt.c.msgid, _attempt.c.inf_refmsgid, _attempt.c.message_id).where(
                (_attempt.c.msgid == text) | (_attempt.c.inf_refmsgid == text))).all():
            own = row.msgid == text
            where = f"message {row.message_id}" if row.message_id is not None else "a sign-in or file transfer"
            result.matched.append(f"msgid of an attempt of {where}" if own
                                  else f"the centre's answer id (inf_refmsgid) to {row.msgid} ({where})")
            if row.message_id is not None:
                message_ids.add(int(row.message_id))
        for visit in conn.execute(select(schema.visit.c.his_key, schema.visit.c.mdtrt_id).where(
                (schema.visit.c.mdtrt_id == text) | (schema.visit.c.his_key == text))).all():
            if visit.mdtrt_id == text:
                result.matched.append(f"mdtrt_id the centre gave HIS visit {visit.his_key}")
            groups.add(VISIT_GROUP + visit.his_key)
        if _group_exists(conn, VISIT_GROUP + text):
            result.matched.append(f"HIS visit number {text}")
            groups.add(VISIT_GROUP + text)
        if infnos:
            for keyed in conn.execute(select(_record.c.id, _record.c.infno).where(
                    _record.c.infno.in_(sorted(set(infnos))), _record.c.business_key == text)).all():
                result.matched.append(f"business key of {keyed.infno} record {keyed.id}")
                record_ids.add(int(keyed.id))
        if not (message_ids or groups or record_ids):
            stays = _patient_groups(conn, text)
            if stays:
                result.matched.append(f"patient number (psn_no) of {len(stays)} visit(s)")
                groups |= stays
    _collect(store, result, message_ids, groups, record_ids)
    return result


def _group_exists(conn: Connection, group: str) -> bool:
    return conn.execute(select(_record.c.id).where(_record.c.group_key == group).limit(1)).first() is not None


def _patient_groups(conn: Connection, psn_no: str) -> set[str]:
    """The visit groups of a patient: stays the policy rules remember (an index), and visits
    whose first record's HIS row names the patient."""
    stay = schema.policy_stay
    groups = {VISIT_GROUP + key for key in conn.execute(select(stay.c.stay_key).where(stay.c.psn_no == psn_no))
              .scalars()}
    firsts = [int(first) for first in conn.execute(
        select(func.min(_record.c.id)).where(_record.c.group_key.startswith(VISIT_GROUP, autoescape=True))
        .group_by(_record.c.group_key)).scalars()]
    for chunk in in_chunks(sorted(firsts), _SCAN_CHUNK):
        for row in conn.execute(select(_record.c.group_key, _record.c.raw).where(_record.c.id.in_(chunk))).all():
            raw = _json(row.raw)
            if isinstance(raw, dict) and str(raw.get("psn_no") or "").strip() == psn_no:
                groups.add(row.group_key)
    return groups


def _collect(store: StateStore, result: SearchResult, message_ids: set[int], groups: set[str],
             record_ids: set[int]) -> None:
    """The messages and records found, each once: records of the groups and of the messages,
    messages of the groups and of the records."""
    with store.begin() as conn:
        for names in in_chunks(sorted(groups)):
            record_ids |= set(conn.execute(select(_record.c.id).where(_record.c.group_key.in_(names))).scalars())
            message_ids |= set(conn.execute(select(_message.c.id).where(_message.c.group_key.in_(names))).scalars())
        for chunk in in_chunks(sorted(message_ids)):
            record_ids |= set(conn.execute(select(_record.c.id).where(_record.c.message_id.in_(chunk))).scalars())
        for chunk in in_chunks(sorted(record_ids)):
            message_ids |= {int(m) for m in conn.execute(select(_record.c.message_id).where(
                _record.c.id.in_(chunk), _record.c.message_id.is_not(None))).scalars()}
        result.messages = _rows(conn, _MESSAGE_COLUMNS, _message.c.id, message_ids, _message_summary)
        result.records_total = len(record_ids)
        result.records = _rows(conn, _RECORD_COLUMNS, _record.c.id, sorted(record_ids)[:SEARCH_LIMIT],
                               _record_summary)


def _rows(conn: Connection, columns: Iterable[Any], key: Any, ids: Iterable[int], make: Any) -> list[Any]:
    found = []
    for chunk in in_chunks(sorted(set(ids))):
        found += [make(row) for row in conn.execute(select(*columns).where(key.in_(chunk)).order_by(key)).all()]
    return found


def payload_text(payload: Any) -> str:
    """A payload or HIS row as a person reads it: indented JSON, Chinese as it is, amounts as the
    exact numbers they were sent as."""
    return simplejson.dumps(payload, ensure_ascii=False, indent=2, use_decimal=True, default=str)
