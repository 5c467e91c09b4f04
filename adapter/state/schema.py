"""Tables of the state database: one file (or one PostgreSQL schema) holds everything."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from adapter.state.sealing import Sealed

metadata = MetaData()

#: Extraction progress per source; advanced in the same transaction that stores the lines.
watermark = Table(
    "watermark",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: 目录对照: hospital code -> national code, per kind (item, dept, doctor).
mapping = Table(
    "mapping",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("his_code", String(150), primary_key=True),
    Column("national_code", String(50), nullable=False),
    Column("national_name", String(200), nullable=False, default=""),
    Column("updated_at", DateTime, nullable=False),
)

#: The outbox. The business payload is fixed at creation; envelopes are built per attempt.
message = Table(
    "message",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    #: messages with the same key (a visit) are sent strictly in id order
    Column("group_key", String(64), nullable=False),
    Column("insuplc_admdvs", String(6)),
    #: the business payload, sealed when [state] key_file is set (adapter.state.sealing)
    Column("payload", Sealed("message.payload"), nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("lease_until", DateTime),
    Column("last_msgid", String(30)),
    Column("last_error", Text),
    Column("inf_refmsgid", String(30)),
    Column("created_at", DateTime, nullable=False),
    Column("acked_at", DateTime),
)
Index("ix_message_due", message.c.status, message.c.next_attempt_at)
#: the messages a claim may take, in id order: without it PostgreSQL takes them from message_pkey
#: in id order, reading past every acked message of the ledger for each claim of ten (29 ms at
#: 80,000 messages, and growing with the history; 0.1 ms with it). It holds only those rows.
_CLAIMABLE = "status IN ('pending', 'retry_wait')"
Index("ix_message_claimable", message.c.id, postgresql_where=text(_CLAIMABLE), sqlite_where=text(_CLAIMABLE))
Index("ix_message_group", message.c.group_key, message.c.id)

#: One row per send attempt, committed before the request leaves: msgid is never reused.
attempt = Table(
    "attempt",
    metadata,
    Column("msgid", String(30), primary_key=True),
    Column("message_id", Integer, ForeignKey("message.id")),
    Column("infno", String(8), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("outcome", String(16)),
    Column("http_status", Integer),
    Column("infcode", String(8)),
    Column("err_msg", Text),
    #: the centre's 接收方报文ID of an answer read as infcode 0: an answer carrying one already
    #: seen belongs to another request
    Column("inf_refmsgid", String(30)),
    #: when the centre received the request, on the centre's clock (the answer's refmsg_time):
    #: an answer older than one already accepted is not the answer to a later request
    Column("refmsg_time", DateTime),
)
Index("ix_attempt_refmsgid", attempt.c.inf_refmsgid)
#: the newest answer time, read at each start
Index("ix_attempt_refmsg_time", attempt.c.refmsg_time)
#: a message's attempts (whether an earlier one may have reached the centre unanswered)
Index("ix_attempt_message", attempt.c.message_id)

#: Per-institution msgid sequence: the last second used and the counter within it.
msgid_counter = Table(
    "msgid_counter",
    metadata,
    Column("fixmedins_code", String(30), primary_key=True),
    Column("stamp", String(14), nullable=False),
    Column("seq", Integer, nullable=False),
)

#: The cached 9001 sign-in per institution.
session = Table(
    "session",
    metadata,
    Column("fixmedins_code", String(30), primary_key=True),
    Column("sign_no", String(30), nullable=False),
    Column("signed_at", DateTime, nullable=False),
)

#: The ledger: every record of every transaction (a 2301 fee line, a 2401 admission, a 2204
#: charge batch...), unique per (infno, business key) so nothing is uploaded twice. ``raw`` is
#: the HIS row as extracted; ``payload`` the transaction input built from it once it is ready.
record = Table(
    "record",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(8), nullable=False),
    Column("business_key", String(200), nullable=False),
    Column("group_key", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("park_kind", String(16)),
    Column("park_reason", Text),
    #: both sealed when [state] key_file is set (adapter.state.sealing)
    Column("raw", Sealed("record.raw"), nullable=False),
    Column("payload", Sealed("record.payload")),
    Column("message_id", Integer, ForeignKey("message.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("infno", "business_key", name="uq_record_business_key"),
)
Index("ix_record_status", record.c.infno, record.c.status)
Index("ix_record_park", record.c.status, record.c.park_kind)
Index("ix_record_message", record.c.message_id)
#: the records of a visit (of some transactions, in some states): on group_key alone a planner
#: without statistics (SQLite's) preferred ix_record_status, reading every fee line sent
Index("ix_record_group", record.c.group_key, record.c.infno, record.c.status)

#: HIS visit number -> the centre's mdtrt_id, learnt from the 2401 reply.
visit = Table(
    "visit",
    metadata,
    Column("his_key", String(64), primary_key=True),
    Column("mdtrt_id", String(30), nullable=False),
    Column("registered_by", String(30), nullable=False),
    Column("registered_at", DateTime, nullable=False),
)
#: an answer naming an mdtrt_id already registered for another visit is another request's
Index("ix_visit_mdtrt", visit.c.mdtrt_id)


#: Every catalogue download or import, valid or refused; at most one ``active`` per kind.
catalog_version = Table(
    "catalog_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    #: the highest 版本号 in the catalogue after this download (the next sync's ``ver``)
    Column("ver", String(40), nullable=False),
    #: staging, active, superseded, rolled_back, refused
    Column("status", String(16), nullable=False),
    Column("rows_in_file", Integer, nullable=False, default=0),
    Column("rows_total", Integer, nullable=False, default=0),
    Column("source", String(300), nullable=False),
    Column("encoding", String(16)),
    Column("report", Text),
    Column("created_at", DateTime, nullable=False),
    Column("activated_at", DateTime),
)
Index("ix_catalog_version_kind", catalog_version.c.kind, catalog_version.c.status)

#: The full catalogue of one version (a snapshot: an incremental download is merged into a
#: copy of the version before it, so rollback is a switch, not a repair).
catalog_entry = Table(
    "catalog_entry",
    metadata,
    Column("version_id", Integer, ForeignKey("catalog_version.id"), primary_key=True),
    Column("code", String(60), primary_key=True),
    Column("name", String(300), nullable=False, default=""),
    Column("row_version", String(40), nullable=False, default=""),
    Column("begin_date", String(10)),
    Column("end_date", String(10)),
    Column("valid", String(3), nullable=False, default="1"),
    Column("restricted", String(500), nullable=False, default=""),
    Column("price_cap", String(24)),
    #: the file line it came from (for reports; 0 when copied from the version before)
    Column("line_no", Integer, nullable=False, default=0),
)


#: What the policy rules found, one row per (rule, stay, line); kept for the self-inspection
#: report whether the line was parked (block) or sent (warn, or found after it was sent).
finding = Table(
    "finding",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    #: parked, reported (sent and reported), late (found after the line had already gone)
    Column("outcome", String(16), nullable=False),
    Column("stay_key", String(64), nullable=False),
    Column("feedetl_sn", String(30), nullable=False),
    Column("line_id", Integer),
    Column("his_item_code", String(150), nullable=False, default=""),
    Column("dept", String(100), nullable=False, default=""),
    Column("doctor", String(50), nullable=False, default=""),
    Column("fee_time", DateTime, nullable=False),
    Column("amount", String(24), nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", Text, nullable=False, default="{}"),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("rule_id", "stay_key", "feedetl_sn", name="uq_finding"),
)
Index("ix_finding_time", finding.c.fee_time)

#: Stays as the policy rules remember them (for readmission checks across stays).
policy_stay = Table(
    "policy_stay",
    metadata,
    Column("stay_key", String(64), primary_key=True),
    Column("psn_no", String(30), nullable=False),
    Column("adm_time", DateTime),
    Column("dscg_time", DateTime),
    Column("main_diag_code", String(30), nullable=False, default=""),
    Column("outpatient", Integer, nullable=False, default=0),
)
Index("ix_policy_stay_psn", policy_stay.c.psn_no)


#: Every reconciliation run (3201/3202) with its whole report, for `reconcile history`.
recon_run = Table(
    "recon_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    Column("balanced", Integer, nullable=False),
    Column("pairs", Integer, nullable=False),
    Column("differences", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("report", Text, nullable=False),
)


#: Every action a person takes on the spool by hand (spool retry, recheck, resolve, park,
#: purge): who (the OS user), when (UTC), on what, why, and what it did; ``spool audit``.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("who", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    #: what it was done to, as ``message 12``, ``records 3, 4`` or ``every parked record``
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("result", Text, nullable=False, default=""),
)
Index("ix_audit_log_at", audit_log.c.at)


#: The daemon's daily health summary (adapter.monitor.daily) as JSON, one row per local day it
#: was written for (the day is the key: several daemons on one spool write it once); the status
#: page shows the newest.
daily_summary = Table(
    "daily_summary",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("written_at", DateTime, nullable=False),
    Column("summary", Text, nullable=False),
)


#: Long work under way (a backfill's extract, check, build and send; a catalogue import; a
#: reconciliation): one row per stage and transaction, written every few seconds by the process
#: doing it (adapter.progress), so `status` and the status page, in other processes, can show
#: how far it got and when it should end. ``finished_at`` is set when the work ends.
progress = Table(
    "progress",
    metadata,
    Column("stage", String(16), primary_key=True),
    #: the transaction or catalogue ("" for a stage over every transaction)
    Column("infno", String(16), primary_key=True),
    Column("unit", String(16), nullable=False),
    Column("done", Integer, nullable=False),
    Column("total", Integer),
    #: 1 when ``total`` is an estimate (counted when the work began, or guessed from bytes read)
    Column("estimated", Integer, nullable=False, default=0),
    Column("started_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    #: host and process id of the writer
    Column("owner", String(64), nullable=False, default=""),
)
