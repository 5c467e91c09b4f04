"""``reconcile``: 3201/3202 against the centre for a day, a range or a month; ``reconcile
history`` lists the runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapter.cli.common import (
    EXIT_SOMETHING_FAILED,
    _settings,
    config_option,
    handled,
    json_option,
    parse_day,
    state_store,
)

if TYPE_CHECKING:
    from adapter.reconcile.report import Label
    from adapter.reconcile.run import ReconRun


@click.group(invoke_without_command=True)
@click.option("--date", "day", help="One day, yyyy-MM-dd.")
@click.option("--from", "start", help="First day of a range, yyyy-MM-dd.")
@click.option("--to", "end", help="Last day of a range (inclusive).")
@click.option("--month", help="A calendar month, yyyy-MM.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV here.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write XLSX here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write HTML here.")
@click.option("--by", type=click.Choice(["doctor", "department", "operator"]),
              help="Also group the differences by the stay's doctor, department or the operator who settled, "
                   "where the settlement query names them.")
@config_option
@json_option
@click.pass_context
@handled
def reconcile(ctx: click.Context, day: str | None, start: str | None, end: str | None, month: str | None,
              csv_path: Path | None, xlsx_path: Path | None, html_path: Path | None, by: str | None,
              config_path: Path, as_json: bool) -> None:
    """Reconcile with the centre: 3201 per insurance type x clearing type, 3202 where they do
    not balance. Exit status 3 when something does not balance."""
    if ctx.invoked_subcommand is not None:
        return
    from adapter.app import build_adapter
    from adapter.reconcile import report
    from adapter.reconcile.local import Period
    from adapter.reports.layout import Hospital

    chosen = [name for name, value in (("--date", day), ("--from/--to", start or end), ("--month", month)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --date D, --from D1 --to D2, --month YYYY-MM")
    if day:
        period = Period.day(parse_day(day, "--date"))
    elif month:
        try:
            first = datetime.strptime(month, "%Y-%m")
        except ValueError:
            raise click.BadParameter(f"{month!r} is not a month (yyyy-MM)", param_hint="--month") from None
        period = Period.month(first.year, first.month)
    else:
        if not (start and end):
            raise click.UsageError("--from and --to go together")
        period = Period(parse_day(start, "--from"), parse_day(end, "--to"), "range")
        if period.end < period.start:
            raise click.UsageError("--to is before --from")
    settings = _settings(config_path)
    centre = settings.centre
    hospital = Hospital(centre.fixmedins_code, centre.fixmedins_name)
    home = centre.setl_optins or centre.mdtrtarea_admvs
    adapter = build_adapter(settings, interactive=True)  # bars on a terminal, else a log line
    try:
        label = adapter.edition.label
        run = adapter.reconciler.run(period)
    finally:
        adapter.close()
    # who answers for each settlement that differs, where the settlement query names them
    who = report.responsible_for(run, settings.his.url, settings.require_settlement_query())
    writers: tuple[tuple[Path | None, Callable[[Path], int]], ...] = (
        (csv_path, lambda p: p.write_text(report.as_csv(run, label, who, by), encoding="utf-8-sig")),
        (xlsx_path, lambda p: p.write_bytes(report.as_xlsx(run, label, hospital, home, who, by))),
        (html_path, lambda p: p.write_text(report.as_html(run, label, hospital, home, who, by), encoding="utf-8")),
    )
    for path, write in writers:
        if path is not None:
            write(path)
    if as_json:
        click.echo(json.dumps(report.as_json(run, who, by), ensure_ascii=False, default=str))
    else:
        _echo(run, label)
    if not run.balanced:
        sys.exit(EXIT_SOMETHING_FAILED)


def _echo(run: ReconRun, label: Label) -> None:
    from adapter.reconcile.report import KINDS, coded

    click.echo(f"reconciliation {run.period} (run {run.id}): {'balanced' if run.balanced else 'NOT balanced'}")
    click.echo(f"  {'经办机构':<6}{'险种':<6}{'清算':<6}{'医疗费总额':>14}{'基金支付':>14}"
               f"{'个人账户':>12}{'笔数':>6}  结果")
    for p in run.pairs:
        local = p.local
        click.echo(f"  {p.setl_optins:<10}{coded(label, 'insutype', p.insutype)}  "
                   f"{coded(label, 'clr_type', p.clr_type)}{local['medfee_sumamt']:>14}"
                   f"{local['fund_pay_sumamt']:>14}{local['acct_pay']:>12}{local['count']:>8}  "
                   f"{coded(label, 'stmt_rslt', p.stmt_rslt)} {p.description}")
        for d in p.differences:
            link = f" [our msgid {d.our_msgid}]" if d.our_msgid else ""
            click.echo(f"      {d.setl_id:<24} {KINDS.get(d.kind, d.kind)}: {d.detail}{link}")


@reconcile.command("history")
@config_option
@json_option
@handled
def reconcile_history(config_path: Path, as_json: bool) -> None:
    """Every reconciliation run: period, result, differences."""
    from sqlalchemy import select

    from adapter.state import schema

    settings = _settings(config_path)
    run = schema.recon_run
    with state_store(settings) as store, store.begin() as conn:
        rows = conn.execute(select(run.c.id, run.c.kind, run.c.start_date, run.c.end_date, run.c.balanced,
                                   run.c.pairs, run.c.differences, run.c.created_at).order_by(run.c.id)).all()
    if as_json:
        click.echo(json.dumps([dict(r._mapping) for r in rows], ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("no reconciliation has been run yet")
        return
    for r in rows:
        click.echo(f"{r.id:>4}  {r.created_at:%Y-%m-%d %H:%M}  {r.kind:<6} {r.start_date} – {r.end_date}  "
                   f"{'balanced' if r.balanced else 'NOT balanced':<13} {r.pairs} pair(s), "
                   f"{r.differences} difference(s)")
