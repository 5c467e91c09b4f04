"""``report``: reports an inspection asks for; today ``report transmission``, the upload
compliance of a period (what the HIS produced, uploaded on time, late, unsent, parked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from adapter.cli.common import _settings, config_option, handled, parse_day, state_store


@click.group()
def report() -> None:
    """Reports for an inspection (transmission compliance)."""



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
    if fmt == "xlsx":
        assert output is not None
        output.write_bytes(reports.as_xlsx(result, hospital))
    else:
        if fmt == "html":
            content = reports.as_html(result, hospital)
        elif fmt == "csv":
            content = reports.as_csv(result)
        else:
            content = json.dumps(reports.as_json(result), ensure_ascii=False, indent=1)
        if output is None:
            sys.stdout.write(content if content.endswith("\n") else content + "\n")
        else:
            output.write_text(content, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    if output is not None:
        click.echo(f"{result.total('produced')} record(s): {result.total('on_time')} on time, "
                   f"{result.total('late')} late, {result.total('unsent')} unsent "
                   f"({result.total('overdue')} overdue), {result.total('parked')} parked: wrote {output}", err=True)
