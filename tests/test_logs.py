"""Logs a service manager can read: one line per event (no SQL dumps, tracebacks only when
asked), journal priorities under systemd, ISO times with the zone, and never a secret, token,
ID number, phone number or patient name, at any level, exception text included."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from adapter.errors import StateStoreError
from adapter.logs import configure_logging, error_line, exception_line, journal_priority, one_line
from adapter.redact import redact, redact_value

BIN = Path(sys.executable).with_name("yibao-adapter")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")

#: (text as it could reach a log, what must not survive)
LEAKS = [
    ("certificate 430102199003074518 refused", "430102199003074518"),
    ("身份证号 11010519491231002X 不符", "11010519491231002X"),
    ("lower-case check 11010519491231002x", "11010519491231002x"),
    ("联系电话13812345678，请核对", "13812345678"),
    ("phone +86 13912345678", "13912345678"),
    ('{"psn_name":"李四","certno":"430102199003074518","psn_no":"43000000000000000001"}', "李四"),
    ('{"psn_name": "欧阳娜娜"}', "欧阳娜娜"),
    ("{'psn_name': '王五', 'gend': '1'}", "王五"),
    ("psn_name=张三&psn_no=4300", "张三"),
    ("姓名：赵六，性别：男", "赵六"),
    ('"certno": "H01234567"', "H01234567"),
    ("cannot open postgresql://u:secret@127.0.0.1/db", ":secret@"),
    ("state store postgresql+psycopg://yibao:p%40ss@127.0.0.1:5432/state", "p%40ss"),
    ("headers {'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc'}", "eyJhbGciOiJIUzI1NiJ9.e30.abc"),
    ("Authorization: Bearer 0123456789abcdef", "0123456789abcdef"),
    ("sent with Bearer 9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c7d659a2feaa0c55ad015"),
    ("x-tif-signature: 5e884898da28047151d0e56f8dc6292773603d0d", "5e884898da28047151d0e56f8dc6292773603d0d"),
    ("{'x-tif-paasid': 'hosp', 'x-tif-signature': 'abcdef012345'}", "abcdef012345"),
    ("{'x-ca-key': 'k', 'x-ca-signature': '1700000000:ABCDEF'}", "1700000000:ABCDEF"),
    ("_api_signature=Zm9vYmFy&_api_access_key=ak", "Zm9vYmFy"),
    ("DSN host=db user=his password=hunter2 dbname=his", "hunter2"),
    ("Driver={ODBC};Server=h;UID=his;PWD=Sup3r;", "Sup3r"),
    ("app_secret=s3cr3t-value", "s3cr3t-value"),
    ('{"secret_key": "test-sk-not-a-secret"}', "test-sk-not-a-secret"),
    ("environment YIBAO_TIF_TOKEN=tok-123 set", "tok-123"),
    ("?token=abc123&x=1", "abc123"),
    ("[SQL: INSERT INTO p VALUES (?, ?)]\n[parameters: ('钱七', 'diag')]\n(Background on this error at: x)", "钱七"),
]

#: ordinary messages the adapter writes: left exactly as they are
ORDINARY = [
    "cycle: 120 extracted, 6 parked, 3 message(s) acked (150 lines), 0 transient failure(s)",
    "message 17 (2301) sent with msgid H43111100255202612011805000001, 50 lines",
    "mdtrt_id 431199000000000001, feedetl_sn 123456789012345, psn_no 43000000000000000003",
    "centre answered HTTP 503: busy; next attempt at 18:05:00 (2026-12-01T18:05:00.123+08:00)",
    "listening on http://127.0.0.1:9464/ (monitor), centre http://127.0.0.1:8765/fsi/api/rsfComIfsService/callService",
    "amount 138.12 = 3 x 46.04; national code XB01BAC056A001010102954",
    "invalid token: the gateway refused it (HTTP 401)",
    "password authentication failed for user \"his\"",
    "give token = { env = \"VAR\" } (sent as a bearer token)",
    "signed in to the centre; sign-out (9002) failed: connection refused",
    "catalogue 1301 version 20261201 (52 341 rows) switched in",
    "参保人未在本机构登记，请核对就诊信息",
]


@pytest.mark.parametrize(("leaky", "secret"), LEAKS, ids=[leak for _, leak in LEAKS])
def test_redaction_removes_the_value(leaky: str, secret: str):
    redacted = redact(leaky)
    assert secret not in redacted, redacted
    assert redact(redacted) == redacted  # idempotent: a line redacted twice is the same line


@pytest.mark.parametrize("message", ORDINARY)
def test_ordinary_messages_are_unchanged(message: str):
    assert redact(message) == message


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)


def _sql_error(tmp_path: Path) -> StateStoreError:
    """A real SQLAlchemy error (a statement over lines, with parameters) as the store wraps it."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT psn_name,\n       certno\nFROM patients\nWHERE psn_name = :name AND tel = :tel"),
                         {"name": "李四", "tel": "13812345678"})
    except SQLAlchemyError as exc:
        try:
            raise StateStoreError(f"state store failed: {exc}") from exc
        except StateStoreError as wrapped:
            return wrapped
    finally:
        engine.dispose()
    raise AssertionError("the query should have failed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_nothing_secret_survives_at_any_level(tmp_path, restore_logging, no_systemd, fmt):
    log = tmp_path / "adapter.log"
    configure_logging("DEBUG", fmt, str(log))  # DEBUG: tracebacks and every level written
    logger = logging.getLogger("adapter.test")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        for leaky, _ in LEAKS:
            logger.log(level, "answer %s", leaky, extra={"action": "t", "payload": {"psn_name": "孙八"},
                                                          "detail": leaky})
    try:
        raise RuntimeError(" ".join(leaky for leaky, _ in LEAKS))
    except RuntimeError:
        logger.exception("sending failed for certno=%s", "430102199003074518")
    logger.error("state", exc_info=_sql_error(tmp_path))
    written = log.read_text(encoding="utf-8")
    assert "Traceback" in written  # the exception text was written, and redacted
    for _, secret in LEAKS:
        assert secret not in written, secret
    assert "孙八" not in written and "13812345678" not in written and "李四" not in written


def test_one_line_per_event_without_sql_dumps(tmp_path, restore_logging, no_systemd):
    log = tmp_path / "adapter.log"
    configure_logging("INFO", "text", str(log))
    logger = logging.getLogger("adapter.test")
    error = _sql_error(tmp_path)
    logger.exception("cycle failed: %s", error, exc_info=error)
    logger.warning("refused:\n  - [centre] a: wrong\n  - [state] b: wrong")
    logger.debug("not written at INFO")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2, lines
    first = lines[0]
    assert ISO_TIME.match(first.split(" ")[0]) and " ERROR   adapter.test: cycle failed: state store failed: " in first
    assert first.endswith("(StateStoreError: state store failed: (sqlite3.OperationalError) no such table: patients)")
    assert "[SQL:" not in first and "parameters" not in first and "Traceback" not in first
    assert lines[1].endswith("refused: | - [centre] a: wrong | - [state] b: wrong")
    # The same with tracebacks (-v): the traceback is there, the parameters still are not.
    configure_logging("DEBUG", "text", str(log))
    logger.exception("cycle failed", exc_info=error)
    with_trace = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in with_trace and "sqlite3.OperationalError" in with_trace
    assert "李四" not in with_trace and "13812345678" not in with_trace


def test_extras_are_redacted_by_key_and_by_value():
    extra = {"headers": {"YIBAO_TIF_TOKEN": "tok-1", "Authorization": "Basic dXNlcjpwdw==", "x-tif-paasid": "hosp"},
             "input": {"psn_name": "周九", "psn_no": "43000000000000000001", "certno": None},
             "lines": ["13812345678", 3]}
    assert redact_value(extra) == {
        "headers": {"YIBAO_TIF_TOKEN": "***", "Authorization": "***", "x-tif-paasid": "hosp"},
        "input": {"psn_name": "[personal]", "psn_no": "43000000000000000001", "certno": None},
        "lines": ["[phone]", 3]}


def test_sqlalchemy_errors_are_cut_to_their_class_and_first_line(tmp_path):
    error = _sql_error(tmp_path)
    cause = error.__cause__
    assert cause is not None and "[SQL:" in str(cause)  # what SQLAlchemy writes
    assert exception_line(cause) == "OperationalError: (sqlite3.OperationalError) no such table: patients"
    assert one_line(str(error)) == "state store failed: (sqlite3.OperationalError) no such table: patients"
    assert one_line("before\n[SQL: SELECT 1\nFROM x]\n(Background on this error at: https://sqlalche.me/e/20/e3q8) "
                    "after") == "before after"


def test_journal_priorities_under_systemd(capsys, restore_logging, monkeypatch, tmp_path):
    assert [journal_priority(level) for level in (5, 10, 20, 30, 40, 50)] == [7, 7, 6, 4, 3, 2]
    logger = logging.getLogger("adapter.test")

    def emitted(*, tracebacks: bool = False) -> list[str]:
        configure_logging("DEBUG", tracebacks=tracebacks)
        logger.debug("d")
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logger.exception("x")
        return capsys.readouterr().err.splitlines()

    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    lines = emitted()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<3>"], lines
    assert lines[4].endswith("adapter.test: x (ValueError: bad)")
    traced = emitted(tracebacks=True)
    assert len(traced) > 5 and all(line.startswith("<3>") for line in traced[4:]), traced  # every line of it
    monkeypatch.delenv("JOURNAL_STREAM")
    monkeypatch.setenv("INVOCATION_ID", "0123abcd")
    assert [line[:3] for line in emitted()] == ["<7>", "<6>", "<4>", "<3>", "<3>"]
    configure_logging("INFO", "json")
    logger.error("e", extra={"action": "a"})
    line = capsys.readouterr().err
    assert line.startswith("<3>{") and json.loads(line[3:])["action"] == "a"
    # Not under systemd, or into a file: no prefixes.
    monkeypatch.delenv("INVOCATION_ID")
    assert all(not line.startswith("<") for line in emitted())
    monkeypatch.setenv("INVOCATION_ID", "0123abcd")
    configure_logging("INFO", file=str(tmp_path / "a.log"))
    logger.error("into the file")
    assert (tmp_path / "a.log").read_text(encoding="utf-8").startswith("20")


def test_json_times_carry_the_zone(tmp_path):
    """In a process whose local zone is China's, the JSON time says +08:00."""
    program = (
        "import logging\nfrom adapter.logs import configure_logging\n"
        "configure_logging('INFO', 'json')\nlogging.getLogger('adapter.x').info('hello', extra={'action': 'a'})\n"
    )
    env = {**os.environ, "TZ": "Asia/Shanghai"}
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    document = json.loads(result.stderr.strip().removeprefix("<6>"))
    assert ISO_TIME.match(document["time"]) and document["time"].endswith("+08:00"), document
    assert datetime.fromisoformat(document["time"]).utcoffset().total_seconds() == 8 * 3600
    assert document["message"] == "hello" and document["action"] == "a"


def test_a_command_error_is_one_redacted_line_with_the_error_priority(tmp_path):
    """The real command, as systemd starts it: its error line is filed at priority 3; with -v
    the traceback is logged, without it not."""
    state = tmp_path / "state.db"
    state.write_bytes(b"not a database " * 100)
    config = tmp_path / "adapter.toml"
    config.write_text(
        '[his]\nurl = "postgresql+psycopg://his:hunter2@127.0.0.1:9/his"\n'
        'fee_query = "SELECT 1 WHERE :watermark < :limit"\n'
        '[centre]\nbase_url = "http://127.0.0.1:9"\nfixmedins_code = "H43111100255"\nfixmedins_name = "x"\n'
        'mdtrtarea_admvs = "431199"\nopter = "1"\nopter_name = "x"\n[state]\nurl = "sqlite:///state.db"\n',
        encoding="utf-8")
    os.chmod(config, 0o600)
    env = {**os.environ, "INVOCATION_ID": "0123abcd"}
    env.pop("JOURNAL_STREAM", None)
    quiet = subprocess.run([str(BIN), "status", "--config", str(config)], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert quiet.returncode == 1
    errors = [line for line in quiet.stderr.splitlines() if "error:" in line]
    assert errors == [f"<3>error: cannot open state store sqlite:///{state}: (sqlite3.DatabaseError) file is not "
                      "a database"], quiet.stderr
    assert "Traceback" not in quiet.stderr and "Background on this error" not in quiet.stderr
    verbose = subprocess.run([str(BIN), "-v", "status", "--config", str(config)], env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert verbose.returncode == 1 and "<3>Traceback (most recent call last):" in verbose.stderr
    assert "hunter2" not in quiet.stderr + verbose.stderr


def test_error_line_outside_systemd(no_systemd):
    assert error_line(StateStoreError("x\n[SQL: SELECT 1]\n[parameters: ('李四',)]")) == "error: x"


def test_run_once_prints_each_cycle_error_on_one_redacted_line(capsys):
    from types import SimpleNamespace

    from adapter.cli.main import _print_report

    report = SimpleNamespace(extracted=1, parked=0, malformed=0, unmapped=0, invalid=0, lines_rejected=0,
                             messages_acked=0, lines_acked=0, transient_failures=0,
                             errors=["2301: HIS query failed: no such table: fees\n[SQL: SELECT * FROM fees]\n"
                                     "[parameters: ('430102199003074518', '李四')]"])
    _print_report(report)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "error: 2301: HIS query failed: no such table: fees"
