"""The spool tools a person uses (``spool list/show/search/retry/park/purge/audit``) and the
exit rule of ``status`` and ``run --once``, on state databases filled by real cycles against
the simulated centre, through the command line."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, insert, select, update
from sqlalchemy import text as sql

from adapter import jsonio
from adapter.cli import main
from adapter.cli.common import EXIT_SOMETHING_FAILED
from adapter.plugin.api import RegionProfile
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.server import SimulatedCentre
from adapter.rehearsal.sample_his import SampleHis, fee_lines, generate_sample_his, write_mapping_csv
from adapter.spool.states import MessageStatus, ParkKind
from adapter.state import schema
from adapter.state.sealing import write_key_file
from adapter.state.store import utcnow
from tests.conftest import config_text, region_profile
from tests.helpers import run_until_done

REJECTED_CODE = "XA01ABD075A002010100483"
#: registrations (the centre's mdtrt_id), fee lines, cancels, discharges, settlement lists
TRANSACTIONS = 'transactions = ["2401", "2301", "2302", "2402", "4101"]'
#: a zone with a name and no daylight saving, that needs no tz database
CHINA = "CST-8"


@dataclass
class Spool:
    """A sample HIS, its configuration and a state database, driven through the CLI."""

    his: SampleHis
    config: Path
    state_url: str
    runner: CliRunner

    def cli(self, *args: str) -> Result:
        return self.runner.invoke(main, [*args, "--config", str(self.config)])

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def json(self, *args: str) -> Any:
        return jsonio.loads(self.ok(*args, "--json"))

    def rows(self, query: Any) -> list[Any]:
        engine = create_engine(self.state_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(query).all())
        finally:
            engine.dispose()

    def execute(self, statement: Any) -> None:
        engine = create_engine(self.state_url)
        try:
            with engine.begin() as conn:
                conn.execute(statement)
        finally:
            engine.dispose()

    def until_done(self, limit: int = 8) -> None:
        """``run --once`` until nothing is left to send."""
        for _ in range(limit):
            self.cli("run", "--once")
            waiting = self.rows(select(func.count()).select_from(schema.message).where(
                schema.message.c.status.in_(["pending", "retry_wait", "in_flight", "unknown"])))[0][0]
            ready = self.rows(select(func.count()).select_from(schema.record).where(
                schema.record.c.status.in_(["new", "ready"])))[0][0]
            if not waiting and not ready:
                return
        raise AssertionError("cycles did not finish")


def _spool(tmp_path: Path, centre: SimulatedCentre, state_url: str, his_extra: str = "", key: Path | None = None,
           **his_kwargs: Any) -> Spool:
    options = {"visits": 4, "lines_per_visit": 6, "seed": 11, "unmapped_share": 0.1, "invalid_share": 0.05,
               "malformed_share": 0.04, **his_kwargs}
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", **options)
    config = tmp_path / "adapter.toml"
    text = config_text(his_url=his.url, state_url=state_url, centre_url=centre.url, his_extra=his_extra)
    if key is not None:
        text = text.replace(f'url = "{state_url}"', f'url = "{state_url}"\nkey_file = "{key}"')
    config.write_text(text, encoding="utf-8")
    spool = Spool(his, config, state_url, CliRunner())
    spool.ok("mapping", "import", str(write_mapping_csv(tmp_path / "mapping.csv", his.mapping_rows)))
    return spool


def _add_fee_line(spool: Spool, item_code: str | None = None) -> None:
    """One more fee line in the HIS, past the watermark: a copy of a line the centre took, under
    another feedetl_sn, three minutes later (and with ``item_code``, if given)."""
    record = schema.record
    sent = spool.rows(select(record.c.raw).where(record.c.infno == "2301", record.c.status == "sent")
                      .order_by(record.c.id).limit(1))[0]
    engine = create_engine(spool.his.url)
    with engine.begin() as conn:
        like = conn.execute(select(fee_lines).where(fee_lines.c.line_id == json.loads(sent.raw)["line_id"])).first()
        assert like is not None
        later = datetime.strptime(like.charged_at, "%Y-%m-%d %H:%M:%S") + timedelta(minutes=3)  # not a duplicate
        values = {**like._mapping, "feedetl_sn": "0000019999", "init_feedetl_sn": None,
                  "charged_at": f"{later:%Y-%m-%d %H:%M:%S}"}
        if item_code is not None:
            values["item_code"] = item_code
        values.pop("line_id")
        conn.execute(insert(fee_lines).values(**values))
    engine.dispose()


# -- reading -------------------------------------------------------------------------------------
def test_list_show_and_search_find_what_the_cycles_left(tmp_path, make_centre, state_url):
    centre = make_centre("nhsa", reject_codes=frozenset({REJECTED_CODE}))
    spool = _spool(tmp_path, centre, state_url, his_extra=TRANSACTIONS)
    spool.until_done()
    message, record, attempt = schema.message, schema.record, schema.attempt

    listed = spool.json("spool", "list", "--limit", "1000")
    assert listed["total"] == len(spool.rows(select(message.c.id)))
    assert [m["id"] for m in listed["messages"]] == sorted((m["id"] for m in listed["messages"]), reverse=True)
    parked = spool.json("spool", "list", "--state", "parked", "--infno", "2301")
    assert parked["total"] > 0 and {(m["status"], m["infno"]) for m in parked["messages"]} == {("parked", "2301")}
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    assert "no message matches" in spool.ok("spool", "list", "--since", tomorrow)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    assert spool.json("spool", "list", "--since", yesterday)["total"] == listed["total"]
    records = spool.json("spool", "list", "--records", "--state", "parked", "--limit", "1000")
    assert {r["id"] for r in records["records"]} == {
        row.id for row in spool.rows(select(record.c.id).where(record.c.status == "parked"))}
    assert {r["park_kind"] for r in records["records"]} >= {"rejected", "unmapped"}
    text = spool.ok("spool", "list", "--records", "--state", "parked")
    assert "no national code mapped for item" in text and "centre rejected the upload" in text
    wrong = spool.cli("spool", "list", "--state", "sent")  # a record's state, not a message's
    assert wrong.exit_code == 2 and "is not a message state" in wrong.output

    # A message the centre rejected, as it was sent: its payload, the attempt and the answer.
    rejected = next(m for m in parked["messages"])
    shown = spool.json("spool", "show", str(rejected["id"]))
    stored = spool.rows(select(message.c.payload).where(message.c.id == rejected["id"]))[0].payload
    assert shown["payload"] == jsonio.loads(stored)
    tries = spool.rows(select(attempt).where(attempt.c.message_id == rejected["id"]))
    assert [a["msgid"] for a in shown["attempts"]] == [a.msgid for a in tries]
    assert shown["attempts"][0]["outcome"] == "rejected" and shown["attempts"][0]["infcode"] == "-1"
    assert {r["park_kind"] for r in shown["records"]} == {"rejected"}
    text = spool.ok("spool", "show", str(rejected["id"]))
    assert "request as sent" in text and tries[0].msgid in text and tries[0].err_msg in text
    missing = spool.cli("spool", "show", "999999")
    assert missing.exit_code == 1 and "message 999999 is not in the spool" in missing.output
    unmapped = next(r for r in records["records"] if r["park_kind"] == "unmapped")
    text = spool.ok("spool", "show", str(unmapped["id"]), "--record")
    assert "HIS row as read" in text and unmapped["park_reason"] in text

    # Search: our msgid, the centre's answer id, the visit by either number, a setl_id, a patient.
    first = spool.rows(select(attempt).where(attempt.c.message_id.is_not(None), attempt.c.outcome == "ok")
                       .order_by(attempt.c.msgid).limit(1))[0]
    found = spool.json("spool", "search", first.msgid)
    assert f"msgid of an attempt of message {first.message_id}" in found["matched"]
    assert first.message_id in {m["id"] for m in found["messages"]}
    found = spool.json("spool", "search", first.inf_refmsgid)
    assert first.message_id in {m["id"] for m in found["messages"]}

    visit = spool.rows(select(schema.visit))[0]
    of_visit = {row.id for row in spool.rows(select(record.c.id).where(record.c.group_key == f"visit:{visit.his_key}"))}
    found = spool.json("spool", "search", visit.mdtrt_id)
    assert f"mdtrt_id the centre gave HIS visit {visit.his_key}" in found["matched"]
    assert {r["id"] for r in found["records"]} >= of_visit
    assert {r["infno"] for r in found["records"]} >= {"2401", "2301"}
    assert {r["id"] for r in spool.json("spool", "search", visit.his_key)["records"]} >= of_visit

    settlement = spool.rows(select(record).where(record.c.infno == "4101"))[0]
    found = spool.json("spool", "search", settlement.business_key)
    assert f"business key of 4101 record {settlement.id}" in found["matched"]
    assert settlement.id in {r["id"] for r in found["records"]}

    psn_no = json.loads(settlement.raw)["psn_no"]
    everything = spool.rows(select(record.c.id, record.c.raw))
    of_patient = {row.id for row in everything if json.loads(row.raw).get("psn_no") == psn_no}
    found = spool.json("spool", "search", psn_no)
    assert found["matched"] and "psn_no" in found["matched"][0]
    assert {r["id"] for r in found["records"]} >= of_patient
    assert "nothing in the spool matches" in spool.ok("spool", "search", "no-such-thing")


def test_show_and_search_read_a_sealed_spool(tmp_path, centre, sqlite_state_url):
    key = tmp_path / "state.key"
    write_key_file(key)
    spool = _spool(tmp_path, centre, sqlite_state_url, his_extra=TRANSACTIONS, key=key)
    spool.until_done()
    first = spool.rows(sql("SELECT id, raw FROM record ORDER BY id LIMIT 1"))[0]  # as stored
    psn_no = spool.json("spool", "show", str(first.id), "--record")["raw"]["psn_no"]
    assert psn_no and psn_no not in first.raw  # sealed in the database, read through the key
    found = spool.json("spool", "search", psn_no)
    assert "psn_no" in found["matched"][0] and first.id in {r["id"] for r in found["records"]}
    sent = spool.rows(select(schema.message.c.id).where(schema.message.c.status == "acked"))[0].id
    assert spool.json("spool", "show", str(sent))["payload"]


# -- acting, and the audit log -------------------------------------------------------------------
def test_park_and_retry_by_hand_and_every_action_is_audited(tmp_path, make_adapter, centre, sqlite_state_url):
    spool = _spool(tmp_path, centre, sqlite_state_url, unmapped_share=0, invalid_share=0, malformed_share=0)
    adapter = make_adapter(his_url=spool.his.url, state_url=sqlite_state_url, centre_url=centre.url)
    record, message = schema.record, schema.message
    from adapter.flow.report import CycleReport

    report = CycleReport()
    adapter.cycle.extract.run(report)
    new = spool.rows(select(record).where(record.c.status == "new").order_by(record.c.id))
    kept_back = new[-1]  # a record not yet checked: held before it is ever put in a message
    assert "record(s) held" in spool.ok("spool", "park", str(kept_back.id), "--record", "--reason", "asked by finance")
    adapter.cycle.check.run(report)
    adapter.cycle.build.run(report)
    pending = spool.rows(select(message).where(message.c.status == "pending").order_by(message.c.id))
    held = pending[0]
    out = spool.ok("spool", "park", str(held.id), "--reason", "wrong ward")
    assert f"message {held.id} parked ({held.line_count} record(s) held)" in out
    queued = spool.rows(select(record).where(record.c.message_id == pending[1].id))[0]
    refused = spool.cli("spool", "park", str(queued.id), "--record", "--reason", "x")
    assert refused.exit_code == 1 and f"is in message {pending[1].id}: park the message" in refused.output
    assert spool.cli("spool", "park", str(held.id)).exit_code == 2  # --reason is required

    run_until_done(adapter)
    held_records = spool.rows(select(record).where(record.c.message_id == held.id))
    assert {(r.status, r.park_kind) for r in held_records} == {("parked", ParkKind.HELD.value)}
    assert all("wrong ward" in r.park_reason and getpass.getuser() in r.park_reason for r in held_records)
    keys = {tuple(r.business_key.split("|")) for r in held_records}
    assert not keys & set(centre.ledger.fee_lines)
    assert tuple(kept_back.business_key.split("|")) not in centre.ledger.fee_lines
    acked = spool.rows(select(message.c.id).where(message.c.status == "acked"))[0].id
    refused = spool.cli("spool", "park", str(acked), "--reason", "too late")
    assert refused.exit_code == 1 and "the centre holds it" in refused.output

    assert f"{held.line_count} record(s) requeued" in spool.ok("spool", "retry", str(held.id), "--reason", "ward fixed")
    assert "1 record(s) requeued" in spool.ok("spool", "retry", str(kept_back.id), "--record")
    not_parked = spool.cli("spool", "retry", str(acked + 1000), "--record")
    assert not_parked.exit_code == 1 and "not in the spool" in not_parked.output
    run_until_done(adapter)
    assert keys <= set(centre.ledger.fee_lines) and centre.ledger.duplicate_lines == 0
    assert tuple(kept_back.business_key.split("|")) in centre.ledger.fee_lines
    assert {r.status for r in spool.rows(select(record))} == {"sent"}

    log = spool.json("spool", "audit")
    assert [(e["action"], e["target"]) for e in log] == [
        ("park", f"record {kept_back.id}"), ("park", f"message {held.id}"), ("retry", f"message {held.id}"),
        ("retry", f"record {kept_back.id}")]
    assert {e["who"] for e in log} == {getpass.getuser()}
    assert log[1]["reason"] == "wrong ward" and log[2]["result"] == f"{held.line_count} record(s) requeued"
    assert datetime.fromisoformat(log[0]["at"]).utcoffset() is not None  # local time, with its zone
    text = spool.ok("spool", "show", str(held.id))
    assert "done by hand:" in text and "park message" in text and "(reason: wrong ward)" in text
    assert "nothing was done by hand since 2999-01-01" in spool.ok("spool", "audit", "--since", "2999-01-01")
    assert len(spool.json("spool", "audit", "--since", (date.today() - timedelta(days=1)).isoformat())) == 4


def test_retry_parked_lets_the_centres_rejections_go_again(tmp_path, make_centre, sqlite_state_url):
    centre = make_centre("nhsa", reject_codes=frozenset({REJECTED_CODE}))
    spool = _spool(tmp_path, centre, sqlite_state_url, unmapped_share=0, invalid_share=0, malformed_share=0)
    spool.until_done()
    record = schema.record
    rejected = spool.rows(select(record.c.id).where(record.c.park_kind == ParkKind.REJECTED.value))
    assert rejected
    assert "0 record(s) requeued" in spool.ok("spool", "retry", "--parked", "--infno", "2401")
    centre.faults = FaultPlan()  # the centre's catalogue was fixed
    out = spool.ok("spool", "retry", "--all", "--infno", "2301", "--reason", "catalogue fixed")  # --all: as before
    assert f"{len(rejected)} record(s) requeued" in out
    spool.until_done()
    assert {r.status for r in spool.rows(select(record.c.status).where(record.c.id.in_([r.id for r in rejected])))} \
        <= {"sent", "parked"}  # a refund whose original never reached the centre may be refused again
    assert spool.cli("spool", "retry").exit_code == 2
    assert [e["target"] for e in spool.json("spool", "audit")] == [
        "every parked record of 2401", "every parked record of 2301"]


def test_an_unknown_message_parked_by_hand_is_asked_about_again_when_let_go(tmp_path, make_adapter, centre,
                                                                            sqlite_state_url):
    spool = _spool(tmp_path, centre, sqlite_state_url, unmapped_share=0, invalid_share=0, malformed_share=0)
    adapter = make_adapter(his_url=spool.his.url, state_url=sqlite_state_url, centre_url=centre.url)
    message, record = schema.message, schema.record
    adapter.client.sign_no()
    centre.faults = FaultPlan(drop_reply_rate=1.0)  # the centre takes everything, every answer is lost
    adapter.cycle.run()
    centre.faults = FaultPlan()
    unknown = spool.rows(select(message).where(message.c.status == "unknown").order_by(message.c.id))[0]
    tries = unknown.attempts
    out = spool.ok("spool", "park", str(unknown.id), "--reason", "checking at the centre")
    assert "(0 record(s) held)" in out and "stay queued in it (the centre may hold them)" in out
    assert {r.status for r in spool.rows(select(record).where(record.c.message_id == unknown.id))} == {"queued"}
    adapter.cycle.send.paused_until = None
    run_until_done(adapter)
    row = spool.rows(select(message).where(message.c.id == unknown.id))[0]
    assert (row.status, row.attempts) == ("parked", tries)  # not asked about while held
    assert "the centre may hold it" in row.last_error
    out = spool.ok("spool", "retry", str(unknown.id))
    assert "1 message(s) whose outcome is unknown asked about again" in out
    assert spool.rows(select(message.c.status).where(message.c.id == unknown.id))[0].status == "unknown"
    run_until_done(adapter)
    assert spool.rows(select(message.c.status).where(message.c.id == unknown.id))[0].status != "parked"
    assert {r.status for r in spool.rows(select(record))} == {"sent"}
    assert centre.ledger.duplicate_lines == 0


def test_recheck_and_resolve_write_the_audit_log_too(tmp_path, make_adapter, centre, sqlite_state_url):
    spool = _spool(tmp_path, centre, sqlite_state_url, unmapped_share=0, invalid_share=0.2, malformed_share=0)
    adapter = make_adapter(his_url=spool.his.url, state_url=sqlite_state_url, centre_url=centre.url)
    run_until_done(adapter)
    record, message = schema.record, schema.message
    invalid = spool.rows(select(record.c.id).where(record.c.park_kind == ParkKind.INVALID.value))[0].id
    assert spool.cli("spool", "recheck", str(invalid), "--reason", "fixed in the HIS").exit_code == 0

    _add_fee_line(spool)
    centre.faults = FaultPlan(drop_reply_rate=1.0)  # taken by the centre, the answer lost
    adapter.cycle.run()
    centre.faults = FaultPlan()
    lost = spool.rows(select(message.c.id).where(message.c.status == MessageStatus.UNKNOWN.value))[0].id
    out = spool.ok("spool", "resolve", str(lost), "--acked", "--reason", "seen at the centre")
    assert "record(s) marked sent" in out
    log = spool.json("spool", "audit")
    assert [(e["action"], e["target"], e["reason"]) for e in log] == [
        ("recheck", f"record {invalid}", "fixed in the HIS"), ("resolve", f"message {lost}", "seen at the centre")]
    assert log[0]["result"] == "1 of 1 record(s) read again from the HIS"
    assert log[1]["result"].startswith("acked: ") and log[1]["who"] == getpass.getuser()
    assert {r.status for r in spool.rows(select(record.c.status).where(record.c.message_id == lost))} == {"sent"}


# -- purge ---------------------------------------------------------------------------------------
def test_purge_deletes_old_acknowledged_messages_and_keeps_the_minimum_retention(tmp_path, centre, state_url):
    spool = _spool(tmp_path, centre, state_url, unmapped_share=0, invalid_share=0, malformed_share=0)
    spool.until_done()
    message, record, attempt = schema.message, schema.record, schema.attempt
    keep = region_profile("nhsa").minimum_retention
    assert keep == RegionProfile.minimum_retention >= timedelta(days=3 * 365)
    acked = [row.id for row in spool.rows(select(message.c.id).where(message.c.status == "acked")
                                          .order_by(message.c.id))]
    old = acked[:2]
    long_ago = utcnow() - keep - timedelta(days=60)
    spool.execute(update(message).where(message.c.id.in_(old)).values(acked_at=long_ago))
    spool.execute(update(attempt).where(attempt.c.message_id.is_(None)).values(started_at=long_ago))
    old_records = {row.id for row in spool.rows(select(record.c.id).where(record.c.message_id.in_(old)))}
    old_attempts = len(spool.rows(select(attempt.c.msgid).where(
        (attempt.c.message_id.in_(old)) | attempt.c.message_id.is_(None))))
    before_all = len(spool.rows(select(message.c.id)))

    too_recent = (date.today() - timedelta(days=365)).isoformat()
    refused = spool.cli("spool", "purge", "--acked-before", too_recent)
    assert refused.exit_code == 1 and f"keeps what the centre acknowledged for {keep.days} days" in refused.output
    assert len(spool.rows(select(message.c.id))) == before_all
    cutoff = (date.today() - keep - timedelta(days=30)).isoformat()
    expected = f"{len(old)} message(s), {len(old_records)} record(s), {old_attempts} attempt(s)"
    assert f"would delete {expected}" in spool.ok("spool", "purge", "--acked-before", cutoff, "--dry-run")
    assert len(spool.rows(select(message.c.id))) == before_all
    assert f"deleted {expected}" in spool.ok("spool", "purge", "--acked-before", cutoff, "--reason", "retention")
    assert not spool.rows(select(message.c.id).where(message.c.id.in_(old)))
    assert not spool.rows(select(record.c.id).where(record.c.id.in_(old_records)))
    assert not spool.rows(select(attempt.c.msgid).where(attempt.c.message_id.in_(old)))
    assert len(spool.rows(select(message.c.id))) == before_all - len(old)
    assert "deleted 0 message(s)" in spool.ok("spool", "purge", "--acked-before", cutoff)
    log = spool.json("spool", "audit")
    assert [(e["action"], e["target"], e["result"]) for e in log] == [
        ("purge", f"acked before {cutoff}", f"{expected} deleted"),
        ("purge", f"acked before {cutoff}", "0 message(s), 0 record(s), 0 attempt(s) deleted")]
    spool.until_done()  # the spool goes on as before


# -- status and run --once -----------------------------------------------------------------------
def _status(spool: Spool, *args: str) -> subprocess.CompletedProcess[str]:
    """``status`` as cron runs it: its own process, in China's time."""
    return subprocess.run([sys.executable, "-m", "adapter", "status", "--config", str(spool.config), *args],
                          capture_output=True, text=True, env={**os.environ, "TZ": CHINA}, check=False,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)


def test_status_and_run_once_exit_when_a_person_is_needed_now(tmp_path, centre, sqlite_state_url):
    spool = _spool(tmp_path, centre, sqlite_state_url, his_extra=TRANSACTIONS)
    first = spool.cli("run", "--once")
    assert first.exit_code == EXIT_SOMETHING_FAILED, first.output
    assert "needs a person:" in first.output and "parked (never looked before)" in first.output
    spool.until_done()
    # Lines parked for a missing mapping are tried (and parked) again at every cycle: no news.
    again = spool.cli("run", "--once")
    assert again.exit_code == 0, again.output
    assert "unmapped 0" not in again.output and "nothing needs a person now (last look" in again.output

    looked = _status(spool)
    assert looked.returncode == EXIT_SOMETHING_FAILED, looked.stdout + looked.stderr
    assert "needs a person:" in looked.stdout and "record(s) parked (never looked before)" in looked.stdout
    for infno in ("2401", "2301", "2402", "4101"):
        assert f"  {infno} " in looked.stdout  # every transaction, not fee lines alone
    assert "2301 [unmapped] no national code mapped for item" in looked.stdout
    assert "last upload 20" in looked.stdout and "CST (+08:00)" in looked.stdout
    calm = _status(spool)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "nothing needs a person now (last look" in calm.stdout and "CST (+08:00))" in calm.stdout

    _add_fee_line(spool, "ZL0999")  # a new line with an unmapped item: news for both
    news = spool.cli("run", "--once")
    assert news.exit_code == EXIT_SOMETHING_FAILED and "1 record(s) parked since the last look" in news.output
    assert "2301 unmapped 1" in news.output
    looked = _status(spool, "--json")
    assert looked.returncode == EXIT_SOMETHING_FAILED
    state = json.loads(looked.stdout)
    assert state["attention"]["needed"] and state["attention"]["new_parked"] == [
        {"infno": "2301", "kind": "unmapped", "records": 1}]
    assert state["attention"]["last_look"].endswith("+08:00") and state["last_successful_upload"].endswith("+08:00")
    assert {t["infno"] for t in state["transactions"]} >= {"2401", "2301", "2402", "4101"}
    assert "look.status" not in state["watermarks"] and "his.2301" in state["watermarks"]
    assert _status(spool).returncode == 0

    # A parked line let go by hand and parked again by the centre is news again.
    record = schema.record
    some = spool.rows(select(record.c.id).where(record.c.status == "sent", record.c.infno == "2301"))[0].id
    spool.execute(update(record).where(record.c.id == some).values(
        status="parked", park_kind="rejected", park_reason="centre rejected the upload: test", updated_at=utcnow()))
    assert _status(spool).returncode == EXIT_SOMETHING_FAILED


def test_status_says_a_stuck_queue_and_a_failing_sign_in(tmp_path, centre, sqlite_state_url):
    spool = _spool(tmp_path, centre, sqlite_state_url, unmapped_share=0, invalid_share=0, malformed_share=0)
    centre.faults = FaultPlan(error_rate=1.0)  # the centre answers 503 to everything
    down = spool.cli("run", "--once")
    assert down.exit_code == 0, down.output  # down for a moment: retried, nobody needs to get up
    message = schema.message
    spool.execute(update(message).where(message.c.status == "retry_wait")
                  .values(created_at=utcnow() - timedelta(hours=3)))  # and then for three hours
    stuck = _status(spool)
    assert stuck.returncode == EXIT_SOMETHING_FAILED
    assert "queue 2301 is stuck: message" in stuck.stdout and "HTTP 503" in stuck.stdout

    centre.faults = FaultPlan()
    centre.secrets = {"test_hosp": "someone-else's-token"}
    spool.execute(schema.session.delete())  # the session ran out: it must sign in again
    refused = spool.cli("run", "--once")
    assert refused.exit_code == EXIT_SOMETHING_FAILED, refused.output
    assert "signing in fails: the gateway refuses our credentials (HTTP 401)" in refused.output
    assert "signing in fails" in _status(spool).stdout
