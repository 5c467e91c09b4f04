"""Stop the daemon mid-run (gracefully, and by a hard kill), start it again: nothing lost or
stored twice. The daemon runs as a real process; the centre runs in the test on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.sample_his import generate_sample_his, write_mapping_csv
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore
from tests.conftest import config_text

pytestmark = pytest.mark.slow


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "adapter", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stop_mid_run_and_restart(tmp_path, centre, stop_signal):
    his = generate_sample_his(
        f"sqlite:///{tmp_path / 'his.db'}", visits=30, lines_per_visit=10, seed=3,
        unmapped_share=0, invalid_share=0, malformed_share=0,
    )
    centre.faults = FaultPlan(latency_ms=60, error_rate=0.1, seed=1)
    config = tmp_path / "adapter.toml"
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config.write_text(
        config_text(his_url=his.url, state_url=state_url, centre_url=centre.url,
                    schedule="interval_minutes = 0.02")
        + '\n[logging]\nlevel = "INFO"\n',
        encoding="utf-8",
    )
    mapping = write_mapping_csv(tmp_path / "mapping.csv", his.mapping_rows)
    imported = subprocess.run(
        [sys.executable, "-m", "adapter", "mapping", "import", str(mapping), "--config", str(config)],
        capture_output=True, text=True, check=False,
    )
    assert imported.returncode == 0, imported.stderr

    first = _start(config)
    _wait_for(lambda: 20 <= len(centre.ledger.fee_lines))
    assert len(centre.ledger.fee_lines) < his.lines, "stopped too late to test anything"
    first.send_signal(stop_signal)
    _, err = first.communicate(timeout=30)
    if stop_signal == signal.SIGTERM:
        assert first.returncode == 0, err.decode()
        assert b"stopping after the current send" in err
        store = StateStore(state_url)
        with store.begin() as conn:
            in_flight = conn.execute(
                select(func.count()).where(schema.message.c.status == MessageStatus.IN_FLIGHT.value)
            ).scalar_one()
        store.close()
        assert in_flight == 0, "a graceful stop leaves nothing in flight"
    else:
        assert first.returncode == -signal.SIGKILL

    second = _start(config)
    try:
        _wait_for(lambda: len(centre.ledger.fee_lines) >= his.lines)
        # Let the daemon record the last acks before stopping it.
        store = StateStore(state_url)

        def all_sent() -> bool:
            with store.begin() as conn:
                return conn.execute(
                    select(func.count()).where(schema.record.c.infno == "2301",
                                               schema.record.c.status != RecordStatus.SENT.value)
                ).scalar_one() == 0

        _wait_for(all_sent)
        store.close()
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
    assert second.returncode == 0

    assert len(centre.ledger.fee_lines) == his.lines  # nothing lost, nothing stored twice
    # A hard kill can land between the centre's commit and our ack: recovery asks the centre
    # (5204) instead of resending, so nothing arrives twice either way.
    assert centre.ledger.duplicate_lines == 0
