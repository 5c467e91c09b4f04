"""The command line: parse, call, print. Nothing here knows how a stage works."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from adapter.cli.catalog import catalog
from adapter.cli.common import EXIT_SOMETHING_FAILED, _settings, config_option, handled, json_option, state_store
from adapter.cli.db import db
from adapter.cli.reconcile import reconcile
from adapter.cli.rehearsal import centre, demo, sample_his
from adapter.cli.report import report
from adapter.cli.rules import rules
from adapter.cli.spool import spool
from adapter.config import load_settings
from adapter.errors import AdapterError
from adapter.logs import configure_logging, one_line
from adapter.redact import redact

logger = logging.getLogger("adapter.cli")

@click.group()
@click.option("-v", "--verbose", is_flag=True,
              help="Debug logging and tracebacks (in the [logging] format and file of the configuration).")
@click.version_option(package_name="yibao-adapter")
def main(verbose: bool) -> None:
    """yibao-adapter: HIS to medical-insurance centre middleware."""
    configure_logging("DEBUG" if verbose else "WARNING")


main.add_command(catalog)
main.add_command(db)
main.add_command(centre)
main.add_command(sample_his)
main.add_command(demo)
main.add_command(rules)
main.add_command(reconcile)
main.add_command(report)
main.add_command(spool)


# -- configuration and plugins -----------------------------------------------------------
@main.command("check-config")
@config_option
@handled
def check_config(config_path: Path) -> None:
    """Validate the whole configuration file: everything `run` would refuse is refused here
    (region, gateway and credentials, transactions and their HIS queries, policy rules)."""
    from adapter.app import plan

    settings = load_settings(config_path)
    try:
        checked = plan(settings)
    except AdapterError as exc:
        raise AdapterError(f"{config_path}: {exc}") from exc
    click.echo(
        f"{config_path}: OK (region {checked.region.name}, gateway {checked.gateway.name}, "
        f"every {settings.schedule.interval_minutes:g} min) uploading {', '.join(checked.specs)}"
    )


@main.group()
def plugins() -> None:
    """Inspect plugins."""


@plugins.command("list")
@json_option
def plugins_list(as_json: bool) -> None:
    """Show every plugin: name, version, origin, hooks, and whether it loaded."""
    from adapter.plugin.manager import PluginHost

    host = PluginHost.load()
    host.regions(), host.signers(), host.rules()  # run the hooks so failures show up
    infos = host.plugins()
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], ensure_ascii=False, indent=2))
        return
    for info in infos:
        click.echo(f"{info.name:<12} {info.version:<9} {info.status:<8} {info.origin}")
        if info.hooks:
            click.echo(f"{'':<12} hooks: {', '.join(info.hooks)}")
        if info.error:
            click.echo(f"{'':<12} error: {info.error}")


# -- mapping -----------------------------------------------------------------------------
@main.group()
def mapping() -> None:
    """目录对照: hospital codes to national codes."""


@mapping.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@handled
def mapping_import(file: Path, config_path: Path) -> None:
    """Import a mapping CSV (kind,his_code,national_code[,national_name])."""
    from adapter.mapping.importer import read_mapping_csv
    from adapter.mapping.store import MappingStore
    from adapter.progress import reporter

    settings = _settings(config_path)
    rows = read_mapping_csv(file)
    # bars on a terminal, else a log line; no store row (the rows go in one transaction)
    with state_store(settings) as store, reporter(None, settings.progress.every_seconds, interactive=True) as progress:
        with progress.start("mapping", "import", total=len(rows)) as task:
            written = MappingStore(store).upsert(rows, progress=task.advance)
        counts = MappingStore(store).count()
    click.echo(
        f"imported {written} mapping row(s) from {file}; now "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        + ". Lines parked for missing mappings are retried at the next cycle."
    )


@mapping.command("unmapped")
@config_option
@json_option
@handled
def mapping_unmapped(config_path: Path, as_json: bool) -> None:
    """List hospital codes without a mapping (and how many lines wait on each), and mappings
    whose national code the active catalogue retired or does not have."""
    from adapter.catalog.check import stale_mappings
    from adapter.mapping.store import MappingStore
    from adapter.plugin.manager import PluginHost

    settings = _settings(config_path)
    specs = PluginHost.load().region(settings.centre.region).catalogues
    with state_store(settings) as store:
        missing = MappingStore(store).unmapped()
        stale = stale_mappings(store, specs)
    if as_json:
        click.echo(
            json.dumps(
                [{"kind": m.kind.value, "his_code": m.his_code, "waiting_lines": m.waiting_lines,
                  "reason": "no mapping"} for m in missing]
                + [{"kind": m.kind, "his_code": m.his_code, "national_code": m.national_code,
                    "reason": m.reason} for m in stale],
                ensure_ascii=False,
            )
        )
        return
    if not missing and not stale:
        click.echo("every extracted line has its mappings, and every mapped code is in the active catalogues")
        return
    if missing:
        click.echo(f"{'kind':<8} {'hospital code':<20} lines waiting")
        for item in missing:
            click.echo(f"{item.kind.value:<8} {item.his_code:<20} {item.waiting_lines}")
    if stale:
        click.echo(f"{'kind':<8} {'hospital code':<20} {'national code':<24} reason")
        for entry in stale:
            click.echo(f"{entry.kind:<8} {entry.his_code:<20} {entry.national_code:<24} {entry.reason}")


# -- running -----------------------------------------------------------------------------
@main.command()
@config_option
@click.option("--once", is_flag=True,
              help="Run one cycle and exit (status 3 when something needs a person now, as `status` says).")
@handled
def run(config_path: Path, once: bool) -> None:
    """Run the daemon: extract, map, validate, spool and send every interval."""
    from adapter.app import build_adapter
    from adapter.daemon import Daemon
    from adapter.monitor.facts import read_snapshot
    from adapter.monitor.status import needs_a_person

    settings = _settings(config_path)
    adapter = build_adapter(settings, interactive=True)  # a long cycle shows bars on a terminal, else log lines
    try:
        daemon = Daemon(adapter, config_path=config_path)  # SIGHUP reads config_path again
        if once:
            report = daemon.run_once()
            _print_report(report)
            wired = daemon.adapter
            snapshot = read_snapshot(wired.store, wired.settings.his.transactions, wired.edition)
            attention = needs_a_person(wired.store, wired.settings, snapshot, "run", report.errors)
            _print_attention(attention)
            if attention.needed:
                sys.exit(EXIT_SOMETHING_FAILED)
        else:
            daemon.run_forever()
    finally:
        adapter.close()


def _print_report(report: Any) -> None:
    click.echo(
        f"extracted {report.extracted}, parked {report.parked} "
        f"(malformed {report.malformed}, unmapped {report.unmapped}, invalid {report.invalid}, "
        f"rejected {report.lines_rejected}), messages acked {report.messages_acked} "
        f"({report.lines_acked} lines), transient failures {report.transient_failures}"
    )
    for error in report.errors:  # as the log writes them: one line, nothing secret or personal
        click.echo(f"error: {one_line(redact(str(error)))}")


def _print_attention(attention: Any) -> None:
    from adapter.monitor.status import local_time

    if not attention.needed:
        click.echo("nothing needs a person now" + (f" (last look {local_time(attention.last_look)})"
                                                   if attention.last_look else ""))
        return
    click.echo("needs a person:")
    for reason in attention.reasons:
        click.echo(f"  {reason}")


@main.command()
@config_option
@json_option
@handled
def status(config_path: Path, as_json: bool) -> None:
    """Health of every transaction's queue; exits 3 when something needs a person now (records
    parked since the last look, a stuck queue, signing in failing)."""
    from adapter.monitor.status import needs_a_person, progress_stale_after, queue_status
    from adapter.plugin.manager import PluginHost
    from adapter.spec.tables import load_edition

    settings = _settings(config_path)
    edition = load_edition(PluginHost.load().region(settings.centre.region).interface_edition)
    with state_store(settings) as store:
        state = queue_status(store, edition=edition, infnos=settings.his.transactions,
                             stale_after=progress_stale_after(settings))
        assert state.snapshot is not None
        attention = needs_a_person(store, settings, state.snapshot, "status")
    if as_json:
        click.echo(json.dumps({**state.as_dict(), "attention": attention.as_dict()}, ensure_ascii=False, indent=2))
    else:
        _print_status(state)
        _print_attention(attention)
    if attention.needed:
        sys.exit(EXIT_SOMETHING_FAILED)


def _print_status(state: Any) -> None:
    from adapter.monitor.health import age_text
    from adapter.monitor.status import local_time

    click.echo("messages: " + ", ".join(f"{k} {v}" for k, v in state.messages.items()))
    click.echo("records:  " + ", ".join(f"{k} {v}" for k, v in state.lines.items()))
    for item in state.transactions:
        states = ", ".join(f"{k} {v}" for k, v in sorted(item["by_status"].items())) or "none yet"
        click.echo(f"  {item['infno']} {item['name']}".rstrip() + f": {item['records']} record(s) ({states})")
        details = []
        if item["messages"]:
            details.append("messages " + ", ".join(f"{k} {v}" for k, v in sorted(item["messages"].items())))
        if item["oldest_unsent_at"] is not None:
            details.append(f"oldest unsent read {local_time(item['oldest_unsent_at'])}")
        if item["head"] is not None:
            head = item["head"]
            details.append(f"head message {head['message_id']} ({head['status']}, {head['attempts']} attempt(s))")
        details.append(f"last upload {local_time(item['last_upload_at']) if item['last_upload_at'] else 'never'}")
        click.echo("      " + "; ".join(details))
    age = state.oldest_unsent_age_seconds
    click.echo(f"oldest unsent: {age_text(age) if age is not None else '-'}"
               + (f" (since {local_time(state.oldest_unsent_created_at)})" if state.oldest_unsent_created_at else ""))
    last = state.last_successful_upload
    click.echo(f"last successful upload: {local_time(last) if last else 'never'}")
    click.echo("watermark: " + (", ".join(f"{k} = {v}" for k, v in state.watermarks.items()) or "none"))
    if state.progress:
        click.echo("in progress (long work: a backfill, an import, a reconciliation):")
        for item in state.progress:
            ends = f"; ends about {local_time(item['ends_at'])}" if item["ends_at"] else ""
            said = f"last word {age_text(item['silent_seconds'])} ago"
            if item["stale"]:
                said = f"no word for {age_text(item['silent_seconds'])}: its process may have stopped"
            click.echo(f"  {item['text']}{ends} (started {local_time(item['started_at'])}, {said})")
    if state.parked_reasons:
        click.echo("parked (`spool list --records --state parked`, `spool show ID --record`):")
        for item in state.parked_reasons:
            click.echo(f"  {item['lines']:>5}  {item['infno']} [{item['kind']}] {item['reason']}")
    if state.unknown:
        click.echo("outcome unknown (asked about again; `spool resolve ID --acked|--resend` settles one by hand):")
        for item in state.unknown:
            click.echo(f"  message {item['message_id']} {item['infno']} (age {age_text(item['age_seconds'])}, "
                       f"next {local_time(item['next_attempt_at'])}): {item['last_error']}")
    if state.retry_errors:
        click.echo("waiting to retry:")
        for item in state.retry_errors:
            click.echo(
                f"  message {item['message_id']} {item['infno']} (attempts {item['attempts']}, next "
                f"{local_time(item['next_attempt_at'])}): {item['last_error']}"
            )


# -- simulated centre, sample data, demo ---------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
