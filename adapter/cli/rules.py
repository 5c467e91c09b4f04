"""``rules``: the policy rules in force, and the self-inspection report."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapter.cli.common import _settings, config_option, handled, json_option, parse_day, state_store

if TYPE_CHECKING:
    from adapter.config import Settings
    from adapter.plugin.api import RegionProfile
    from adapter.policy.engine import ActiveRule


@click.group()
def rules() -> None:
    """Policy rules (art. 38 behaviours, local limits) and the self-inspection report."""


def _active(config_path: Path) -> tuple[Settings, RegionProfile, list[ActiveRule]]:
    from adapter.plugin.manager import PluginHost
    from adapter.policy.engine import resolve

    settings = _settings(config_path)
    host = PluginHost.load()
    region = host.region(settings.centre.region)
    return settings, region, resolve(host.policy_rules(), region.name, region.rule_set, settings.rules)


@rules.command("list")
@config_option
@json_option
@handled
def rules_list(config_path: Path, as_json: bool) -> None:
    """Every policy rule: source document, parameters in force, severity and status."""
    _, region, active = _active(config_path)
    if as_json:
        click.echo(json.dumps([
            {"id": a.rule.id, "description": a.rule.description, "source": a.rule.source, "enabled": a.enabled,
             "severity": a.severity.value, "params": dict(a.params), "origin": a.origin, "needs": list(a.rule.needs)}
            for a in active], ensure_ascii=False, default=str))
        return
    click.echo(f"policy rules in force for region {region.name}:")
    for a in active:
        status = "on " if a.enabled else "OFF"
        click.echo(f"\n  [{status}] {a.rule.id} ({a.severity.value}) — {a.rule.description}")
        click.echo(f"        source: {a.rule.source}; numbers from {a.origin}")
        for name, value in a.params.items():
            shown = ", ".join(value) if isinstance(value, tuple) else value
            click.echo(f"        {name} = {shown}")
        if a.rule.needs:
            click.echo(f"        needs from the HIS query: {', '.join(a.rule.needs)}")



@rules.command("report")
@click.option("--from", "start", required=True, help="First day, yyyy-MM-dd.")
@click.option("--to", "end", required=True, help="Last day, yyyy-MM-dd (inclusive).")
@click.option("--format", "fmt", type=click.Choice(["html", "xlsx", "csv", "json"]), default="html",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: stdout; xlsx needs it).")
@click.option("--by", type=click.Choice(["doctor", "department", "operator"]),
              help="Grouped by who answers for the lines: findings and amount at stake per ordering doctor, "
                   "billing department or operator, as the HIS names them.")
@click.option("--annual-fund-payments", type=Decimal, help="Last year's fund payments, for the exposure estimate.")
@config_option
@handled
def rules_report(start: str, end: str, fmt: str, out: Path | None, by: str | None,
                 annual_fund_payments: Decimal | None, config_path: Path) -> None:
    """Self-inspection report: findings by rule, department, doctor and operator, amounts at
    stake, the annual-ratio indicators, and the estimated penalty band where the region has a
    table; with --by, the findings and amounts of each doctor, department or operator."""
    from adapter.errors import AdapterError
    from adapter.policy import report as reports
    from adapter.reports.layout import Hospital

    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise AdapterError(f"--to {end} is before --from {start}")
    if fmt == "xlsx" and out is None:
        raise AdapterError("--format xlsx needs --out FILE.xlsx")
    settings, region, active = _active(config_path)
    with state_store(settings) as store:
        result = reports.build_report(
            store, first, last, region=region.name, descriptions={a.rule.id: a.rule.description for a in active},
            his_url=settings.his.url, settlement_query=settings.his.settlement_query,
            penalty_table=region.penalty_table, penalty_source=region.penalty_source,
            annual_fund_payments=annual_fund_payments, transactions=region.transactions,
        )
    hospital = Hospital(settings.centre.fixmedins_code, settings.centre.fixmedins_name)
    view = reports.grouped(result, by) if by else None
    if fmt == "xlsx":
        assert out is not None
        out.write_bytes(reports.as_xlsx(result, hospital) if view is None else reports.grouped_xlsx(view, hospital))
    else:
        if fmt == "html":
            content = reports.as_html(result, hospital) if view is None else reports.grouped_html(view, hospital)
        elif fmt == "csv":
            content = reports.as_csv(result) if view is None else reports.grouped_csv(view)
        else:
            data = reports.as_json(result) if view is None else reports.grouped_json(view)
            content = json.dumps(data, ensure_ascii=False, default=str, indent=1)
        if out is None:
            sys.stdout.write(content if content.endswith("\n") else content + "\n")
        else:
            out.write_text(content, encoding="utf-8")
    if out is not None:
        grouping = f" by {by} ({len(view.groups)} group(s))" if view is not None else ""
        click.echo(f"{len(result.findings)} finding(s), {result.amount:.2f} yuan at stake{grouping}: wrote {out}",
                   err=True)
