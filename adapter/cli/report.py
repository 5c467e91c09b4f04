"""``report``: reports an inspection and finance ask for: ``report transmission``, the upload
compliance of a period (what the HIS produced, uploaded on time, late, unsent, parked), and
``report budget``, the year's global budget against the settlements."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from adapter.cli.common import _settings, config_option, handled, parse_day, state_store


@click.group()
def report() -> None:
    """Reports for an inspection and for finance (transmission compliance, global budget)."""



@report.command("transmission")
@click.option("--from", "start", required=True, help="First day, yyyy-MM-dd.")
@click.option("--to", "end", required=True, help="Last day, yyyy-MM-dd (inclusive).")
@click.option("--format", "fmt", type=click.Choice(["html", "xlsx", "csv", "json"]), default="html",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: stdout; xlsx needs it).")
@config_option
@handled
def transmission(start: str, end: str, fmt: str, output: Path | None, config_path: Path) -> None:
    """Per day and transaction: records the HIS produced, uploaded within the region's
    deadline, late (and by how much), unsent, parked (with reasons), and the longest gap with
    no successful upload; every late, unsent or parked record with its msgid and attempts."""
    from adapter.errors import AdapterError
    from adapter.plugin.manager import PluginHost
    from adapter.reports import transmission as reports
    from adapter.reports.layout import Hospital
    from adapter.spec.tables import load_edition

    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise click.UsageError("--to is before --from")
    if fmt == "xlsx" and output is None:
        raise AdapterError("--format xlsx needs --output FILE.xlsx")
    settings = _settings(config_path)
    region = PluginHost.load().region(settings.centre.region)
    edition = load_edition(region.interface_edition)
    names = {infno: table.name for infno, table in edition.transactions.items()}
    with state_store(settings) as store:
        result = reports.build_report(store, first, last, region=region, names=names)
    hospital = Hospital(settings.centre.fixmedins_code, settings.centre.fixmedins_name)
    _write(fmt, output, reports, result, hospital,
           lambda document: json.dumps(document, ensure_ascii=False, indent=1))
    if output is not None:
        click.echo(f"{result.total('produced')} record(s): {result.total('on_time')} on time, "
                   f"{result.total('late')} late, {result.total('unsent')} unsent "
                   f"({result.total('overdue')} overdue), {result.total('parked')} parked: wrote {output}", err=True)


@report.command("budget")
@click.option("--year", type=click.IntRange(2000, 2100), required=True, help="The budget year.")
@click.option("--as-of", "as_of", help="Last day counted, yyyy-MM-dd (default: yesterday; a past year: its last day).")
@click.option("--format", "fmt", type=click.Choice(["html", "xlsx", "csv", "json"]), default="html",
              show_default=True)
@click.option("--out", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: stdout; xlsx needs it).")
@config_option
@handled
def budget(year: int, as_of: str | None, fmt: str, output: Path | None, config_path: Path) -> None:
    """Per month and insurance type: the budget ([budget]), the fund payments of the
    settlements ([his] settlement_query), the advance the centre should pay at the region's
    share and the reserve it withholds, the 双通道 deductions and the transfer to expect,
    spending against the budget to date, the year-end position projected straight-line and how
    an overspend is shared under the region's rule."""
    from datetime import date, timedelta

    import simplejson
    from sqlalchemy import select

    from adapter.errors import AdapterError, ConfigError
    from adapter.plugin.manager import PluginHost
    from adapter.reconcile.local import Period, settlement_rows
    from adapter.reports import budget as reports
    from adapter.reports.layout import Hospital
    from adapter.spec.tables import load_edition
    from adapter.state import schema

    if fmt == "xlsx" and output is None:
        raise AdapterError("--format xlsx needs --out FILE.xlsx")
    day = parse_day(as_of, "--as-of") if as_of else min(date.today() - timedelta(days=1), date(year, 12, 31))
    settings = _settings(config_path)
    if not settings.budget.monthly and not settings.budget.months:
        raise ConfigError("[budget]: give the monthly budget per insurance type, e.g. [budget.monthly] "
                          '"310" = 1200000.00 (see config/adapter.example.toml)')
    query = settings.require_settlement_query()
    region = PluginHost.load().region(settings.centre.region)
    dictionary = load_edition(region.interface_edition).dictionaries.get("insutype")
    first, last = date(year, 1, 1), min(day, date(year, 12, 31))
    settlements: list[reports.BudgetSettlement] = []
    if last >= first:
        with state_store(settings) as store, store.begin() as conn:
            visits = dict(conn.execute(select(schema.visit.c.his_key, schema.visit.c.mdtrt_id)).all())
        rows = settlement_rows(settings.his.url, query, Period(first, last, "range"))
        settlements = [reports.settlement_of(row, index, region.dialect.fund_pay_sumamt, visits)
                       for index, row in enumerate(rows, start=1)]
    result = reports.build_report(
        year, {month: settings.budget.for_month(year, month) for month in range(1, 13)}, settlements, as_of=day,
        advance_share=region.budget_advance_share, sharing=region.budget_sharing, region=region.name,
        labels=dict(dictionary.values) if dictionary is not None else {})
    hospital = Hospital(settings.centre.fixmedins_code, settings.centre.fixmedins_name)
    _write(fmt, output, reports, result, hospital,
           lambda document: simplejson.dumps(document, ensure_ascii=False, use_decimal=True, indent=1))
    if output is not None:
        position = result.total("position")
        click.echo(f"{year} to {result.as_of}: budget {result.total('annual_budget'):,.2f}, fund payments "
                   f"{result.total('spending_to_date'):,.2f}, advance {result.total('advance'):,.2f}, 双通道 "
                   f"{result.total('dual_channel'):,.2f}; projected year-end "
                   f"{'overspend' if position > 0 else 'surplus'} {abs(position):,.2f}: wrote {output}", err=True)


def _write(fmt: str, output: Path | None, reports: Any, result: Any, hospital: Any,
           dump_json: Callable[[Any], str]) -> None:
    """A report in ``fmt`` through its module's ``as_xlsx``/``as_html``/``as_csv``/``as_json``,
    to ``output`` or stdout (a CSV with a BOM, so Excel reads its Chinese)."""
    if fmt == "xlsx":
        assert output is not None  # refused before the report was built
        output.write_bytes(reports.as_xlsx(result, hospital))
        return
    if fmt == "html":
        content = reports.as_html(result, hospital)
    elif fmt == "csv":
        content = reports.as_csv(result)
    else:
        content = dump_json(reports.as_json(result))
    if output is None:
        sys.stdout.write(content if content.endswith("\n") else content + "\n")
    else:
        output.write_text(content, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
