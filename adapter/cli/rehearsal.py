"""Rehearsal commands: the simulated centre, a sample HIS, the demo. The rehearsal package is
imported only when one of these runs, never on the production path (`run`, `status`...)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from adapter.cli.common import handled
from adapter.errors import AdapterError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--region", default="nhsa", show_default=True,
              help="Region whose gateway scheme, URL style and infver the centre enforces.")
@click.option("--gateway-id", default="hosp_test", show_default=True,
              help="Caller id accepted: TIF paasid, CSB access key or Zhejiang x-ca-key.")
@click.option("--secret-env", default="YIBAO_GATEWAY_SECRET", show_default=True,
              help="Environment variable holding that caller's secret (TIF token, CSB secret key...).")
@click.option("--error-rate", default=0.0, type=float, help="Share of requests answered HTTP 503.")
@click.option("--reset-rate", default=0.0, type=float, help="Share of connections reset.")
@click.option("--timeout-rate", default=0.0, type=float, help="Share of requests never answered.")
@click.option("--drop-reply-rate", default=0.0, type=float,
              help="Share of requests processed and committed, but whose reply is lost.")
@click.option("--timeout-seconds", default=15.0, type=float, show_default=True)
@click.option("--latency-ms", default=0, type=int, help="Random extra latency up to this.")
@click.option("--reject-code", multiple=True, help="National code to reject (repeatable).")
@click.option("--seed", type=int, default=None, help="Seed for repeatable faults.")
@handled
def centre(host: str, port: int, region: str, gateway_id: str, secret_env: str, error_rate: float,
           reset_rate: float, timeout_rate: float, drop_reply_rate: float, timeout_seconds: float,
           latency_ms: int, reject_code: tuple[str, ...], seed: int | None) -> None:
    """Serve the simulated centre on loopback, as the given region's gateway, with optional faults."""
    from adapter.plugin.manager import PluginHost
    from adapter.rehearsal.centre.faults import FaultPlan
    from adapter.rehearsal.centre.server import SimulatedCentre

    secret = os.environ.get(secret_env)
    if not secret:
        raise AdapterError(f"set the gateway secret in ${secret_env} (the adapter's [centre.credentials])")
    profile = PluginHost.load().region(region)
    try:
        faults = FaultPlan(error_rate, reset_rate, timeout_rate, timeout_seconds, latency_ms,
                           frozenset(reject_code), seed, drop_reply_rate=drop_reply_rate)
        server = SimulatedCentre(host=host, port=port, gateway=profile.gateway,
                                 secrets={gateway_id: secret}, region=profile, faults=faults)
    except (ValueError, OSError) as exc:
        raise AdapterError(f"cannot start the simulated centre: {exc}") from exc
    click.echo(f"simulated {region} centre on {server.url} ({profile.gateway} gateway, caller "
               f"{gateway_id}); totals at {server.url}/sim/totals")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@click.command("sample-his")
@click.option("--url", required=True, help="SQLAlchemy URL of an empty database to fill.")
@click.option("--visits", default=20, show_default=True, type=int)
@click.option("--lines-per-visit", default=12, show_default=True, type=int)
@click.option("--seed", default=2024, show_default=True, type=int)
@click.option("--mapping-csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the matching mapping file here.")
@handled
def sample_his(url: str, visits: int, lines_per_visit: int, seed: int, mapping_csv: Path | None) -> None:
    """Build a sample HIS database to rehearse against."""
    from adapter.rehearsal.sample_his import generate_sample_his, write_mapping_csv

    his = generate_sample_his(url, visits=visits, lines_per_visit=lines_per_visit, seed=seed)
    if mapping_csv:
        write_mapping_csv(mapping_csv, his.mapping_rows)
    click.echo(f"{his.visits} visits, {his.lines} fee lines ({his.refund_lines} refunds) in {url}")


def _echo_transactions(result: Any) -> None:
    """Per transaction: records sent and parked here, requests accepted and repeats kept once
    at the centre."""
    from adapter.plugin.manager import PluginHost

    specs = PluginHost.load().region("nhsa").transactions
    totals = result.centre_totals
    click.echo(f"  {'infno':<6} {'sent':>5} {'parked':>6} {'withdrawn':>9} {'centre ok':>9} {'repeats':>7}"
               "  transaction")
    for infno, counts in sorted(result.records_by_status.items()):
        name = specs[infno].description.split(" ", 1)[0] if infno in specs else ""
        click.echo(
            f"  {infno:<6} {counts.get('sent', 0):>5} {counts.get('parked', 0):>6} {counts.get('withdrawn', 0):>9} "
            f"{totals['accepted'].get(infno, 0):>9} {totals['duplicates'].get(infno, 0):>7}  {name}"
        )


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to build the demo (default: a new temporary directory).")
@click.option("--visits", default=30, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@handled
def demo(directory: Path | None, visits: int, seed: int) -> None:
    """Run the whole flow against the simulated centre with injected faults; no setup."""
    from adapter.rehearsal.demo import run_demo

    directory = directory or Path(tempfile.mkdtemp(prefix="yibao-demo-"))
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # The table below tells the story; per-message warnings are for `-v`.
        logging.getLogger().setLevel(logging.ERROR)
    click.echo(f"building a sample HIS and mapping in {directory} ...")
    result = run_demo(directory, visits=visits, seed=seed)
    report, totals = result.report, result.centre_totals
    rows = [
        ("HIS fee lines read", report.extracted),
        ("  of which refunds", result.his.refund_lines),
        ("parked: malformed HIS row", result.parked_by_kind.get("malformed", 0)),
        ("parked: no mapping", result.parked_by_kind.get("unmapped", 0)),
        ("parked: failed validation", result.parked_by_kind.get("invalid", 0)),
        ("parked: rejected by centre", result.parked_by_kind.get("rejected", 0)),
        ("messages acked (2301)", report.messages_acked),
        ("transient failures retried", report.transient_failures),
        ("lines acked", result.lines_by_status.get("sent", 0)),
        ("centre: fee lines kept", totals["fee_lines"]),
        ("centre: duplicate lines", totals["fee_lines_duplicates"]),
        ("centre: fee amount", totals["fee_amount"]),
        ("centre: faults injected", sum(totals["faults"].values())),
        ("replies lost, then inquired", report.outcomes_unknown),
    ]
    width = max(len(label) for label, _ in rows)
    click.echo("")
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value:>10}")
    click.echo("")
    _echo_transactions(result)
    click.echo("")
    for kind, (ver, row_count) in sorted(result.catalogues.items()):
        click.echo(f"  catalogue {kind:<5} version {ver:<20} {row_count:>6} rows (downloaded, validated, in use)")
    recon = result.reconciliation
    if recon is not None:
        settled = sum(int(p.local["count"]) for p in recon.pairs)
        click.echo(f"  reconciliation {recon.period}: {'balanced' if recon.balanced else 'NOT balanced'} "
                   f"({len(recon.pairs)} agency x insurance x clearing group(s), {settled} settlements)")
    click.echo("")
    for kind, reason in result.parked_examples.items():
        click.echo(f"  e.g. [{kind}] {reason[:150]}")
    _echo_findings(result)
    click.echo(
        f"\n{result.cycles} cycle(s) in {result.seconds:.1f}s. Config, HIS and state are in "
        f"{directory}; try: yibao-adapter status --config {directory / 'adapter.toml'}"
    )
    if not result.complete:
        click.echo("demo did not finish: some lines are still unsent (see status)", err=True)
        sys.exit(1)
    if result.reports_missing or result.rules_not_shown:
        click.echo(f"demo reports incomplete: not written {', '.join(result.reports_missing) or '-'}; rules with "
                   f"no finding {', '.join(result.rules_not_shown) or '-'}", err=True)
        sys.exit(1)


def _echo_findings(result: Any) -> None:
    """The policy findings of the month per rule, and where the reports are."""
    from adapter.policy.report import RULE_NAMES

    click.echo(f"\n  policy findings: {sum(result.findings_by_rule.values())} (self-inspection, per rule)")
    for rule, count in result.findings_by_rule.items():
        click.echo(f"  {count:>6}  {rule} {RULE_NAMES.get(rule, '')}".rstrip())
    click.echo("\n  reports:")
    for what, path in result.reports.items():
        click.echo(f"    {what:<34} {path}")
