"""The status page for people (``/``): one HTML page, Chinese first with the English beside it,
that reloads itself. It says whether the adapter is ready and why not, which alerts are open,
the queues per transaction and state, the oldest item waiting, recent errors in plain words,
parked records with their reasons, messages whose outcome is unknown, catalogue ages, the
last reconciliation and the newest daily summary (adapter.monitor.daily). Rendered from
adapter/templates/status_page.html (autoescaped: park reasons and errors quote the centre and
the HIS), with the reports' stylesheet and no scripts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from adapter.errors import StateStoreError
from adapter.monitor.alerts import OpenAlert
from adapter.monitor.daily import DailySummary, latest
from adapter.monitor.facts import Snapshot, plain_error
from adapter.monitor.health import Check, Observed, Runtime, age_text, stuck_heads
from adapter.monitor.status import progress_stale_after
from adapter.progress import duration_text, rate_text
from adapter.state.progress import read_progress

PARK_KINDS = {
    "malformed": "数据无法读取 malformed",
    "unmapped": "未对照 unmapped",
    "invalid": "校验未通过 invalid",
    "rejected": "中心拒收 rejected by the centre",
}
ALERT_KINDS = {
    "oldest_unsent": "上传将超时 upload deadline near",
    "parked_rising": "挂起增加 parked records rising",
    "queue_stuck": "队列卡住 queue stuck",
    "sign_in_failing": "签到失败 sign-in failing",
    "centre_unreachable": "连不上中心 centre unreachable",
    "catalog_stale": "目录过期 catalogue out of date",
    "reconcile_mismatch": "对账不平 reconciliation mismatch",
    "disk_low": "磁盘将满 disk nearly full",
}
RECENT_ERRORS = 10
#: the stages of long work (adapter.progress), as the page names them
WORK_STAGES = {
    "extract": "抽取 extract", "check": "校验 check", "build": "组包 build", "send": "上传 send",
    "catalog": "目录 catalogue", "reconcile": "对账 reconcile",
}


def local(moment: datetime | None) -> str:
    """A naive UTC time of the state store in this machine's time, with its zone."""
    if moment is None:
        return "—"
    shown = moment.replace(tzinfo=UTC).astimezone()
    return f"{shown:%Y-%m-%d %H:%M:%S} {shown.tzname() or ''}".rstrip()


def short(moment: datetime | None) -> str:
    """The same, as a table cell (the zone is said once, in the page's head)."""
    if moment is None:
        return "—"
    return f"{moment.replace(tzinfo=UTC).astimezone():%m-%d %H:%M:%S}"


def _zone() -> str:
    now = datetime.now().astimezone()
    return f"{now.tzname() or ''} (UTC{now:%z})".strip()


@dataclass(frozen=True)
class Page:
    observed: Observed
    runtime: Runtime
    snapshot: Snapshot
    checks: list[Check]
    alerts: list[OpenAlert]
    refresh_seconds: int

    def context(self) -> dict[str, Any]:
        snapshot, settings = self.snapshot, self.observed.settings
        now = snapshot.taken_at
        stuck = {infno for infno, _ in stuck_heads(snapshot, settings)}
        queues = []
        for infno, facts in sorted(snapshot.transactions.items()):
            head = facts.head
            queues.append({
                "infno": infno, "name": facts.name, "records": facts.records, "messages": facts.messages,
                "oldest": age_text((now - facts.oldest_unsent_at).total_seconds()) if facts.oldest_unsent_at else "",
                "deadline": age_text(self.observed.region.deadline_for(infno).total_seconds()),
                "head": (f"#{head.message_id} · {head.attempts} 次 tries · {age_text(head.age_seconds(now))}"
                         if head else ""),
                "last_upload": short(facts.last_upload_at),
                "bad": infno in stuck,
            })
        waiting = [(facts.oldest_unsent_at, infno) for infno, facts in snapshot.transactions.items()
                   if facts.oldest_unsent_at is not None]
        oldest = None
        if waiting:
            first, infno = min(waiting)
            oldest = {"infno": infno, "name": snapshot.transactions[infno].name, "since": local(first),
                      "age": age_text((now - first).total_seconds())}
        errors: list[dict[str, Any]] = []
        for attempt in snapshot.centre.attempts:  # newest first; the same error again is counted, not repeated
            if attempt.outcome == "ok":
                continue
            zh, en = plain_error(attempt)
            same = next((e for e in errors if (e["infno"], e["zh"], e["en"]) == (attempt.infno, zh, en)), None)
            if same is not None:
                same["times"] += 1
                same["first"] = short(attempt.finished_at)
            elif len(errors) < RECENT_ERRORS:
                errors.append({"at": short(attempt.finished_at), "first": short(attempt.finished_at),
                               "infno": attempt.infno, "zh": zh, "en": en, "times": 1})
        confirmed = self.runtime.catalogs_current_at
        catalogs = [{"kind": c.kind, "ver": c.ver, "rows": c.rows, "activated": short(c.activated_at),
                     "age": age_text((now - c.activated_at).total_seconds()) if c.activated_at else "—",
                     "confirmed": short(confirmed.get(c.kind))}
                    for c in snapshot.catalogs]
        missing = [kind for kind in settings.catalog.kinds if kind not in {c.kind for c in snapshot.catalogs}]
        centre = snapshot.centre
        ready = all(check.ok for check in self.checks)
        return {
            "hospital": {"name": settings.centre.fixmedins_name, "code": settings.centre.fixmedins_code},
            "region": self.observed.region.name,
            "version": _version(),
            "generated": local(now),
            "zone": _zone(),
            "refresh": self.refresh_seconds,
            "ready": ready,
            "checks": self.checks,
            "alerts": [{"kind": ALERT_KINDS.get(a.kind, a.kind), "since": local(_parse(a.since)), "message": a.message}
                       for a in self.alerts],
            "queues": queues,
            "oldest": oldest,
            "errors": errors,
            "parked": [{"infno": p.infno, "kind": PARK_KINDS.get(p.kind, p.kind), "reason": p.reason,
                        "records": p.records} for p in snapshot.parked_reasons],
            "unknown": [{"id": u.message_id, "infno": u.infno, "age": age_text((now - u.created_at).total_seconds()),
                         "attempts": u.attempts, "error": u.last_error or ""} for u in snapshot.unknown],
            "catalogs": catalogs,
            "missing_catalogs": missing,
            "reconciliations": [{"kind": r.kind, "period": r.period, "balanced": r.balanced, "pairs": r.pairs,
                                 "differences": r.differences, "at": short(r.created_at)}
                                for r in snapshot.reconciliations],
            "centre": {"signed_in": local(centre.signed_in_at) if centre.signed_in_at else "",
                       "last_answer": local(centre.last_answer_at) if centre.last_answer_at else "",
                       "unreachable": centre.unreachable_in_a_row},
            "cycle": {"last": local(self.runtime.last_cycle_at) if self.runtime.last_cycle_at else "",
                      "status": self.runtime.last_status, "started": local(self.runtime.started_at),
                      "cycles": self.runtime.cycles},
            "disk": ({"path": snapshot.disk.path, "free": f"{snapshot.disk.free_share:.0%}",
                      "free_gib": f"{snapshot.disk.free_bytes / 2**30:.1f}"} if snapshot.disk else None),
            "daily": self._daily(),
            "progress": self._progress(),
        }

    def _progress(self) -> list[dict[str, Any]]:
        """Long work under way (a backfill's stages, an import, a reconciliation), as the page
        shows it; a row not written for long is marked (its process may have stopped)."""
        try:
            rows = read_progress(self.observed.store)
        except StateStoreError:
            return []
        now, stale = self.snapshot.taken_at, progress_stale_after(self.observed.settings)
        shown = []
        for row in rows:
            silent = max(0.0, (now - row.updated_at).total_seconds())
            total = f" / {'~' if row.estimated else ''}{row.total:,}" if row.total is not None else ""
            rate, left = row.rate, row.seconds_left
            shown.append({
                "work": f"{WORK_STAGES.get(row.stage, row.stage)} {row.infno}".strip(),
                "done": f"{row.done:,}{total} {row.unit}",
                "share": f"{min(row.done / row.total, 1):.0%}" if row.total else "",
                "rate": f"{rate_text(rate)} {row.unit}/s" if rate is not None else "—",
                "left": duration_text(left) if left is not None else "—",
                "ends": local(row.ends_at) if row.ends_at is not None else "总数未知 total not known",
                "started": short(row.started_at),
                "silent": age_text(silent),
                "bad": silent > stale,
            })
        return shown

    def _daily(self) -> dict[str, Any] | None:
        """The newest daily summary as the page shows it (None: none written yet)."""
        try:
            summary = latest(self.observed.store)
        except StateStoreError:
            return None
        return None if summary is None else daily_context(summary)

    def render(self) -> str:
        return _environment().get_template("status_page.html").render(**self.context())


SIGN_IN_PROBLEMS = {
    "credentials": "签到失败：网关拒绝本院凭据（HTTP 401） sign-in failing: the gateway refuses our credentials",
    "refused": "签到失败：中心拒绝 9001 sign-in failing: the centre refuses 9001",
}


def daily_context(summary: DailySummary) -> dict[str, Any]:
    """A daily summary as the status page's template reads it."""
    if summary.sign_in_problem:
        sign_in = SIGN_IN_PROBLEMS.get(summary.sign_in_problem, summary.sign_in_problem)
    elif summary.signed_in_at is None:
        sign_in = "未签到 not signed in"
    else:
        sign_in = f"已签到 signed in since {local(summary.signed_in_at)}"
    oldest = summary.oldest_unsent
    return {
        "day": f"{summary.day:%Y-%m-%d}",
        "window": f"{summary.start:%Y-%m-%d %H:%M} – {summary.end:%Y-%m-%d %H:%M}",
        "written": local(summary.written_at),
        "rows": [{"infno": t.infno, "name": t.name, "uploads": t.uploads, "records": t.records,
                  "failures": t.failures, "parked": t.parked, "unsent": t.unsent,
                  "oldest": summary.age(t.oldest_unsent_at) if t.oldest_unsent_at else "",
                  "bad": bool(t.failures or t.parked)} for t in summary.transactions],
        "totals": {name: summary.total(name) for name in ("uploads", "records", "failures", "parked", "unsent")},
        "oldest": ({"infno": oldest.infno, "age": summary.age(oldest.oldest_unsent_at)} if oldest else None),
        "sign_in": sign_in,
        "sign_in_bad": bool(summary.sign_in_problem) or summary.signed_in_at is None,
        "unreachable": summary.centre_unreachable,
        "catalogs": [{"kind": c.kind, "ver": c.ver or "", "age": summary.age(c.activated_at) if c.ver else ""}
                     for c in summary.catalogs],
        "line": summary.line(),
    }


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("Z"))


@functools.cache
def _version() -> str:
    try:
        return metadata.version("yibao-adapter")
    except metadata.PackageNotFoundError:
        return "?"


@functools.cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("adapter", "templates"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)
