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
from adapter.config import load_settings
from adapter.errors import AdapterError
from adapter.logs import configure_logging

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

    settings = _settings(config_path)
    rows = read_mapping_csv(file)
    with state_store(settings) as store:
        written = MappingStore(store).upsert(rows)
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
@click.option("--once", is_flag=True, help="Run one cycle and exit (status 3 if anything failed).")
@handled
def run(config_path: Path, once: bool) -> None:
    """Run the daemon: extract, map, validate, spool and send every interval."""
    from adapter.app import build_adapter
    from adapter.daemon import Daemon

    settings = _settings(config_path)
    adapter = build_adapter(settings)
    try:
        daemon = Daemon(adapter, config_path=config_path)  # SIGHUP reads config_path again
        if once:
            report = daemon.run_once()
            _print_report(report)
            if not report.clean:
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
    for error in report.errors:
        click.echo(f"error: {error}")


@main.command()
@config_option
@json_option
@handled
def status(config_path: Path, as_json: bool) -> None:
    """Health of the upload queue."""
    from adapter.monitor.status import format_age, queue_status
    from adapter.plugin.manager import PluginHost
    from adapter.spec.tables import load_edition

    settings = _settings(config_path)
    edition = load_edition(PluginHost.load().region(settings.centre.region).interface_edition)
    with state_store(settings) as store:
        state = queue_status(store, edition=edition)
    if as_json:
        click.echo(json.dumps(state.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo("messages: " + ", ".join(f"{k} {v}" for k, v in state.messages.items()))
    click.echo("lines:    " + ", ".join(f"{k} {v}" for k, v in state.lines.items()))
    for item in state.transactions:
        states = ", ".join(f"{k} {v}" for k, v in item["by_status"].items())
        click.echo(f"  {item['infno']} {item['name']}".rstrip() + f": {item['records']} record(s) ({states})")
    click.echo(f"oldest unsent: {format_age(state.oldest_unsent_age_seconds)}"
               + (f" (since {state.oldest_unsent_created_at})" if state.oldest_unsent_created_at else ""))
    click.echo(f"last successful upload: {state.last_successful_upload or 'never'}")
    click.echo("watermark: " + (", ".join(f"{k} = {v}" for k, v in state.watermarks.items()) or "none"))
    if state.parked_reasons:
        click.echo("parked:")
        for item in state.parked_reasons:
            click.echo(f"  {item['lines']:>5}  [{item['kind']}] {item['reason']}")
    if state.unknown:
        click.echo("outcome unknown (asked about again; `spool resolve ID --acked|--resend` settles one by hand):")
        for item in state.unknown:
            click.echo(f"  message {item['message_id']} {item['infno']} (age {format_age(item['age_seconds'])}, "
                       f"next {item['next_attempt_at']}): {item['last_error']}")
    if state.retry_errors:
        click.echo("waiting to retry:")
        for item in state.retry_errors:
            click.echo(
                f"  message {item['message_id']} (attempts {item['attempts']}, next "
                f"{item['next_attempt_at']}): {item['last_error']}"
            )


@main.group()
def spool() -> None:
    """Act on spooled items."""


@spool.command("retry")
@click.argument("message_id", type=int, required=False)
@click.option("--all", "all_", is_flag=True, help="Every line the centre rejected.")
@config_option
@handled
def spool_retry(message_id: int | None, all_: bool, config_path: Path) -> None:
    """Resubmit lines the centre rejected, once the cause is fixed."""
    from adapter.spool.outbox import requeue_parked

    if message_id is None and not all_:
        raise click.UsageError("name a MESSAGE_ID or give --all")
    settings = _settings(config_path)
    with state_store(settings) as store:
        count = requeue_parked(store, None if all_ else message_id)
    click.echo(f"{count} line(s) requeued; they go out in the next cycle")


@spool.command("recheck")
@click.argument("record_ids", type=int, nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every record parked malformed, invalid or unmapped.")
@click.option("--infno", default=None, help="Only records of this transaction.")
@config_option
@handled
def spool_recheck(record_ids: tuple[int, ...], all_: bool, infno: str | None, config_path: Path) -> None:
    """Read the HIS rows of parked malformed, invalid or unmapped records again by their key,
    once fixed in the HIS; they go through the checks at the next cycle."""
    from adapter.app import build_adapter

    if not record_ids and not all_:
        raise click.UsageError("name record IDs or give --all")
    adapter = build_adapter(_settings(config_path))
    try:
        done = adapter.cycle.extract.recheck(None if all_ else list(record_ids), infno)
    finally:
        adapter.close()
    for item in done:
        named = " ".join(filter(None, (f"record {item.record_id}", item.infno, item.business_key)))
        click.echo(f"{named}: {item.note}")
    replaced = sum(1 for item in done if item.replaced)
    click.echo(f"{replaced} record(s) read again from the HIS; they go through the checks at the next cycle")
    if replaced < len(done):
        sys.exit(EXIT_SOMETHING_FAILED)


@spool.command("resolve")
@click.argument("message_id", type=int)
@click.option("--acked", "verdict", flag_value="acked", help="The centre holds it (checked at the centre).")
@click.option("--resend", "verdict", flag_value="resend", help="The centre does not hold it: send it again.")
@click.option("--reason", default="", help="What the decision rests on (kept with the message).")
@config_option
@handled
def spool_resolve(message_id: int, verdict: str | None, reason: str, config_path: Path) -> None:
    """Settle a message whose outcome stayed unknown (the centre's answer was lost and its
    inquiry could not decide), after checking at the centre by other means."""
    import getpass

    from adapter.spool.outbox import resolve_by_hand
    from adapter.state.store import utcnow

    if verdict is None:
        raise click.UsageError("say what the centre holds: --acked or --resend")
    who = getpass.getuser()
    note = f"settled by hand ({verdict}) by {who} at {utcnow():%Y-%m-%d %H:%M:%S} UTC" + (
        f": {reason}" if reason else "")
    settings = _settings(config_path)
    with state_store(settings) as store:
        try:
            count = resolve_by_hand(store, message_id, acked=verdict == "acked", note=note)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    logging.getLogger("adapter.audit").warning(
        "message %d %s", message_id, note, extra={"action": "spool_resolve", "message_id": message_id, "user": who}
    )
    done = "marked sent" if verdict == "acked" else "sent again in the next cycle"
    click.echo(f"message {message_id}: {count} record(s) {done}")


# -- simulated centre, sample data, demo ---------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
