"""The status page (``/``) read the way people read it: served by a running daemon over loopback
and rendered by headless Chromium at 1,000 px (the screenshot kept under build/screenshots/ as
a CI artefact), over a state database built by real cycles against the simulated centre, with
rejections, parked records, a message whose outcome is unknown, a catalogue and a reconciliation
that does not balance in it."""

from __future__ import annotations

import re
import struct
import subprocess
import time
from datetime import timedelta

from sqlalchemy import insert, select, update

from adapter.daemon import Daemon
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import MessageStatus, ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import utcnow
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done
from tests.test_metrics import REJECTED_CODE, Running, free_port, get
from tests.test_reports import HEIGHT, SHOTS, WIDTH, _browse, _chromium, _pixels


def _plant(adapter) -> int:
    """A message whose reply was lost, a park reason with markup in it, a reconciliation that
    does not balance; returns the unknown message's id."""
    message, record = schema.message, schema.record
    with adapter.store.begin() as conn:
        acked = conn.execute(select(message.c.id).where(message.c.status == MessageStatus.ACKED.value)
                             .order_by(message.c.id.desc())).scalars().first()
        conn.execute(update(message).where(message.c.id == acked).values(
            status=MessageStatus.UNKNOWN.value, acked_at=None, attempts=2,
            last_error="no reply within the timeout (ReadTimeout); outcome unknown",
            created_at=utcnow() - timedelta(minutes=42)))
        first = conn.execute(select(record.c.id).where(record.c.status == RecordStatus.SENT.value)).scalars().first()
        conn.execute(update(record).where(record.c.id == first).values(
            status=RecordStatus.PARKED.value, park_kind=ParkKind.INVALID.value,
            park_reason="<script>alert(1)</script> 单价 <b>超出</b> 限价"))
        conn.execute(insert(schema.recon_run).values(
            kind="day", start_date="2026-11-30", end_date="2026-11-30", balanced=0, pairs=2, differences=3,
            created_at=utcnow(), report="{}"))
    return int(acked)


def test_the_status_page_shows_queues_errors_parked_unknown_catalogues_and_reconciliation(
        make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa", reject_codes=frozenset({REJECTED_CODE}))
    port = free_port()
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule=f'interval_minutes = 30\n\n[catalog]\nkinds = ["1301"]\n\n[monitor]\nlisten = "127.0.0.1:{port}"\n'
                 "refresh_seconds = 15")
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    adapter.catalog_sync.sync("1301")
    unknown_id = _plant(adapter)
    centre.faults = FaultPlan(error_rate=1.0, reject_codes=frozenset({REJECTED_CODE}))  # recent errors to show
    daemon = Daemon(adapter)
    with Running(daemon) as running:
        running.wait_cycles(1)
        url = f"http://127.0.0.1:{port}/"
        status, kind, page = get(url)
        assert status == 200 and kind.startswith("text/html")

        assert '<meta http-equiv="refresh" content="15">' in page
        for heading in ("各交易队列", "Queues by transaction and state", "最近错误", "Recent errors",
                        "挂起记录及原因", "Parked records and why", "结果未知的消息",
                        "Messages whose outcome is unknown", "目录", "Catalogues", "最近对账", "Last reconciliation",
                        "告警", "Open alerts"):
            assert heading in page, heading
        assert re.search(r'<td class="wrap name"><div>2301 <span class="label">[^<]+</span></div></td>', page)
        assert "中心拒收 rejected by the centre" in page and "未对照 unmapped" in page
        # the centre's and the HIS's words are shown as text, never as markup
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert f'<td class="id">{unknown_id}</td>' in page and "42 m" in page
        assert "中心服务器出错（HTTP 503）" in page  # the recent errors in plain words, each once
        assert re.search(r"\d+ 次 times since", page)
        assert re.search(r'<td class="code">1301</td><td class="code">[^<]+</td>', page)  # catalogue version
        assert "2026-11-30" in page and "不平 does not balance" in page
        assert "运行中，有告警 running, with" in page  # ready, but the reconciliation mismatch is an open alert
        assert "对账不平 reconciliation mismatch" in page

        # the page as Chromium renders it, at 1,000 px, from the running daemon
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / "status-page.png"
        shot.unlink(missing_ok=True)
        profile = tmp_path / "chromium-profile"
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", url],
                       capture_output=True, text=True, timeout=120, check=True)
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)
        assert len(png) > 30_000 and len(set(_pixels(png))) > 20, f"{shot} looks blank"
    # nothing on the page makes it wider than the window (wide tables scroll in their box)
    probe = tmp_path / "status-probe.html"
    probe.write_text(page.replace(
        "</body>", '<script>document.body.dataset.width = document.documentElement.scrollWidth</script></body>'),
        encoding="utf-8")
    width = re.search(r'data-width="(\d+)"', _browse(probe, profile, "--dump-dom").stdout)
    assert width and int(width.group(1)) <= WIDTH, width and width.group(1)


def test_the_page_of_a_daemon_that_has_not_cycled_yet(make_adapter, centre, sample_his, tmp_path):
    port = free_port()
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, schedule=f'[monitor]\nlisten = "127.0.0.1:{port}"')
    daemon = Daemon(adapter)
    daemon.monitor = daemon._start_monitor(adapter.settings)
    try:
        assert daemon.monitor is not None
        deadline = time.monotonic() + 10
        while True:
            status, _, page = get(f"http://127.0.0.1:{port}/")
            if status == 200 or time.monotonic() > deadline:
                break
        assert status == 200
        assert "尚未运行 not yet" in page and "no cycle has finished yet" in page
        assert "没有等待上传的记录" in page and "尚未对账 — none yet" in page
    finally:
        daemon.monitor.stop()
