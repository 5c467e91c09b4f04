"""``spool``: what a person reads and does in the spool: list, show, search, retry, recheck,
resolve, park, purge, and the audit log every action by hand is written to. Parse, call,
print: the queries are in adapter.spool (inspect, manual, audit)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

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
from adapter.monitor.status import jsonable, local, local_day_start, local_time, zone_text
from adapter.spool.states import MessageStatus, RecordStatus

#: how much of an error or reason a listing shows on its line
_SHORT = 90
#: message states with a next attempt (or inquiry) to come
_WAITING = (MessageStatus.PENDING.value, MessageStatus.RETRY_WAIT.value, MessageStatus.UNKNOWN.value)


@click.group()
def spool() -> None:
    """Read and act on spooled messages and records (every action is audited)."""


def _short(text: str | None, width: int = _SHORT) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _cell(moment: datetime | None) -> str:
    """A time in a listing: local, the zone said once in the heading."""
    return f"{local(moment):%Y-%m-%d %H:%M:%S}" if moment is not None else "-"


def _zone() -> str:
    return zone_text(datetime.now().astimezone())


def _echo_json(value: Any) -> None:
    from adapter.spool.inspect import payload_text

    click.echo(payload_text(jsonable(value)))


def _since(value: str | None) -> datetime | None:
    return None if value is None else local_day_start(parse_day(value, "--since"))


def _message_line(item: Any) -> str:
    if item.status == MessageStatus.ACKED.value:
        then = f"acked {_cell(item.acked_at)}"
    elif item.status in _WAITING:
        then = f"next {_cell(item.next_attempt_at)}"
    else:
        then = ""
    text = (f"{item.id:>8}  {item.infno:<6} {item.status:<10} {item.records:>4} rec {item.attempts:>3} tries  "
            f"built {_cell(item.created_at)}  {then}").rstrip()
    if item.last_error and item.status != MessageStatus.ACKED.value:
        text += f"\n{'':>10}{_short(item.last_error)}"
    return text


def _record_line(item: Any) -> str:
    message = str(item.message_id) if item.message_id is not None else "-"
    text = (f"{item.id:>8}  {item.infno:<6} {item.status:<9} {item.park_kind or '':<9} {item.business_key:<32} "
            f"message {message:>6}  changed {_cell(item.updated_at)}")
    if item.status in (RecordStatus.PARKED.value, RecordStatus.WITHDRAWN.value) and item.park_reason:
        text += f"\n{'':>10}{_short(item.park_reason)}"
    return text


def _message_heading() -> str:
    return f"{'message':>8}  {'infno':<6} {'status':<10} records/attempts, times in {_zone()}"


def _record_heading() -> str:
    return f"{'record':>8}  {'infno':<6} {'status':<9} {'parked':<9} {'business key':<32} times in {_zone()}"


# -- reading -----------------------------------------------------------------------------
@spool.command("list")
@click.option("--records", "records", is_flag=True, help="List records (the ledger) instead of messages.")
@click.option("--state", default=None, help="Only this state (a message's, or with --records a record's).")
@click.option("--infno", default=None, help="Only this transaction.")
@click.option("--since", default=None, metavar="YYYY-MM-DD",
              help="Only what was built (messages) or last changed (records) on or after this local day.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many.")
@config_option
@json_option
@handled
def spool_list(records: bool, state: str | None, infno: str | None, since: str | None, limit: int,
               config_path: Path, as_json: bool) -> None:
    """Messages (or records) newest first, by state, transaction and day."""
    from adapter.spool.inspect import list_messages, list_records

    states = [s.value for s in (RecordStatus if records else MessageStatus)]
    if state is not None and state not in states:
        raise click.BadParameter(f"{state!r} is not a {'record' if records else 'message'} state "
                                 f"({', '.join(states)})", param_hint="--state")
    start = _since(since)
    with state_store(_settings(config_path)) as store:
        if records:
            found = list_records(store, state=RecordStatus(state) if state else None, infno=infno, since=start,
                                 limit=limit)
        else:
            found = list_messages(store, state=MessageStatus(state) if state else None, infno=infno, since=start,
                                  limit=limit)
    items = found.records if records else found.messages
    if as_json:
        _echo_json({"total": found.total, "records" if records else "messages": [i.as_dict() for i in items]})
        return
    if not items:
        click.echo(f"no {'record' if records else 'message'} matches")
        return
    click.echo(_record_heading() if records else _message_heading())
    for item in items:
        click.echo(_record_line(item) if records else _message_line(item))
    if found.total > len(items):
        click.echo(f"… the newest {len(items)} of {found.total} (--limit for more)")


@spool.command("show")
@click.argument("item_id", type=int)
@click.option("--record", "is_record", is_flag=True, help="ITEM_ID is a record's id, not a message's.")
@config_option
@json_option
@handled
def spool_show(item_id: int, is_record: bool, config_path: Path, as_json: bool) -> None:
    """A message as it was sent: its request (the payload every attempt carried), every attempt
    with the centre's answer, the records it carries with their states and reasons, and what
    people did to it. With --record: one record, its HIS row and its message."""
    from adapter.spool.inspect import show_message, show_record

    with state_store(_settings(config_path)) as store:
        try:
            detail: Any = show_record(store, item_id) if is_record else show_message(store, item_id)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo_json(detail.as_dict())
        return
    if is_record:
        _print_record(detail)
    else:
        _print_message(detail)


def _print_message(detail: Any) -> None:
    from adapter.spool.inspect import payload_text

    item = detail.message
    click.echo(f"message {item.id}: {item.infno}, {item.status}, group {item.group_key}, "
               f"{item.records} record(s), {item.attempts} attempt(s)")
    click.echo(f"  built {local_time(item.created_at)}"
               + (f"; acked {local_time(item.acked_at)}" if item.acked_at else "")
               + (f"; next attempt {local_time(item.next_attempt_at)}"
                  if item.next_attempt_at and item.status in _WAITING else ""))
    if item.last_error:
        click.echo(f"  last: {item.last_error}")
    if detail.inf_refmsgid:
        click.echo(f"  the centre's answer id (inf_refmsgid): {detail.inf_refmsgid}")
    click.echo("request as sent (the input; every attempt put it in an envelope with its own msgid):")
    click.echo(payload_text(detail.payload))
    _print_attempts(detail.attempts)
    click.echo("records:" if detail.records else "records: none left in it")
    for record in detail.records:
        click.echo(_record_line(record))
    _print_audit(detail.audit)


def _print_record(detail: Any) -> None:
    from adapter.spool.inspect import payload_text

    item = detail.record
    click.echo(f"record {item.id}: {item.infno} {item.business_key}, {item.status}"
               + (f" ({item.park_kind})" if item.park_kind else "") + f", group {item.group_key}")
    click.echo(f"  read from the HIS {local_time(item.created_at)}; last changed {local_time(item.updated_at)}")
    if item.park_reason:
        click.echo(f"  reason: {item.park_reason}")
    click.echo("HIS row as read:")
    click.echo(payload_text(detail.raw))
    if detail.payload is not None:
        click.echo("input built from it:")
        click.echo(payload_text(detail.payload))
    if detail.message is not None:
        click.echo(f"in message {detail.message.id} ({detail.message.status}; `spool show {detail.message.id}`)")
        _print_attempts(detail.attempts)
    _print_audit(detail.audit)


def _print_attempts(attempts: list[Any]) -> None:
    click.echo("attempts:" if attempts else "attempts: none yet")
    for attempt in attempts:
        answer = ", ".join(part for part in (
            attempt.outcome or "no answer recorded (interrupted)",
            f"HTTP {attempt.http_status}" if attempt.http_status is not None else "",
            f"infcode {attempt.infcode}" if attempt.infcode is not None else "",
            f"inf_refmsgid {attempt.inf_refmsgid}" if attempt.inf_refmsgid else "") if part)
        click.echo(f"  {attempt.msgid}  {local_time(attempt.started_at)}"
                   + (f" → {local(attempt.finished_at):%H:%M:%S}" if attempt.finished_at else "") + f"  {answer}")
        if attempt.err_msg:
            click.echo(f"      {attempt.err_msg}")


def _print_audit(entries: list[Any]) -> None:
    if entries:
        click.echo("done by hand:")
        for entry in entries:
            click.echo("  " + _audit_line(entry))


def _audit_line(entry: Any) -> str:
    return (f"{local_time(entry.at)}  {entry.who}  {entry.action} {entry.target}"
            + (f": {entry.result}" if entry.result else "") + (f" (reason: {entry.reason})" if entry.reason else ""))


@spool.command("search")
@click.argument("text")
@config_option
@json_option
@handled
def spool_search(text: str, config_path: Path, as_json: bool) -> None:
    """Find messages and records by msgid (ours or the centre's), visit (the HIS visit number or
    the centre's mdtrt_id), business key (a settlement's setl_id...) or patient number (psn_no)."""
    from adapter.plugin.manager import PluginHost
    from adapter.spool.inspect import search

    settings = _settings(config_path)
    infnos = sorted(set(PluginHost.load().region(settings.centre.region).transactions) | set(settings.his.transactions))
    with state_store(settings) as store:
        found = search(store, text, infnos)
    if as_json:
        _echo_json(found.as_dict())
        return
    if not found.matched:
        click.echo(f"nothing in the spool matches {text!r} (as a msgid, visit, mdtrt_id, business key or psn_no)")
        return
    for how in found.matched:
        click.echo(f"found as {how}")
    if found.messages:
        click.echo(_message_heading())
        for message in found.messages:
            click.echo(_message_line(message))
    if found.records:
        click.echo(_record_heading())
        for record in found.records:
            click.echo(_record_line(record))
    if found.records_total > len(found.records):
        click.echo(f"… {len(found.records)} of {found.records_total} records shown")


@spool.command("audit")
@click.option("--since", default=None, metavar="YYYY-MM-DD", help="From this local day on (default: the newest 100).")
@config_option
@json_option
@handled
def spool_audit(since: str | None, config_path: Path, as_json: bool) -> None:
    """What people did to the spool by hand: who (the OS user), when, the action, on what, why."""
    from adapter.spool.audit import entries

    start = _since(since)
    with state_store(_settings(config_path)) as store:
        found = entries(store, since=start, limit=None if start else 100)
    if as_json:
        _echo_json([{"id": e.id, "at": e.at, "who": e.who, "action": e.action, "target": e.target,
                     "reason": e.reason, "result": e.result} for e in found])
        return
    if not found:
        click.echo("nothing was done by hand" + (f" since {since}" if since else ""))
    for entry in found:
        click.echo(_audit_line(entry))


# -- acting ------------------------------------------------------------------------------
reason_option = click.option("--reason", default="", help="Why (kept in the audit log).")


@spool.command("retry")
@click.argument("item_id", type=int, required=False)
@click.option("--record", "is_record", is_flag=True, help="ITEM_ID is a record's id, not a message's.")
@click.option("--parked", "--all", "parked", is_flag=True,
              help="Every parked record that can be retried (rejected by the centre, parked by hand).")
@click.option("--infno", default=None, help="With --parked: only records of this transaction.")
@reason_option
@config_option
@handled
def spool_retry(item_id: int | None, is_record: bool, parked: bool, infno: str | None, reason: str,
                config_path: Path) -> None:
    """Let parked items go again, once the cause is fixed: records the centre rejected are sent
    again, records parked by hand go through the checks again, a message parked by hand while
    its outcome was unknown is asked about at the centre again."""
    from adapter.spool import manual

    if (item_id is None) == (not parked):
        raise click.UsageError("name a MESSAGE_ID (or a record's with --record) or give --parked")
    if infno is not None and not parked:
        raise click.UsageError("--infno goes with --parked")
    with state_store(_settings(config_path)) as store:
        try:
            if parked:
                done = manual.retry_parked(store, infno, reason)
            elif is_record:
                assert item_id is not None
                done = manual.retry_record(store, item_id, reason)
            else:
                assert item_id is not None
                done = manual.retry_message(store, item_id, reason)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    for note in done.notes:
        click.echo(note)
    click.echo(f"{done.result}; they go out in the next cycle")


@spool.command("park")
@click.argument("item_id", type=int)
@click.option("--record", "is_record", is_flag=True, help="ITEM_ID is a record's id (new or ready), not a message's.")
@click.option("--reason", required=True, help="Why it must not be sent (kept with it and in the audit log).")
@config_option
@handled
def spool_park(item_id: int, is_record: bool, reason: str, config_path: Path) -> None:
    """Hold a pending, retry-waiting or unknown message (or a record not yet in a message) back so
    it is not sent; `spool retry` lets it go."""
    from adapter.spool import manual

    if not reason.strip():
        raise click.BadParameter("say why", param_hint="--reason")
    with state_store(_settings(config_path)) as store:
        try:
            done = (manual.park_record if is_record else manual.park_message)(store, item_id, reason)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    what = f"record {item_id}" if is_record else f"message {item_id}"
    click.echo(f"{what} parked ({done.records} record(s) held); "
               f"`spool retry {item_id}{' --record' if is_record else ''}` lets it go")
    for note in done.notes:
        click.echo(note)


@spool.command("purge")
@click.option("--acked-before", "acked_before", required=True, metavar="YYYY-MM-DD",
              help="Delete what the centre acknowledged before this local day.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@reason_option
@config_option
@handled
def spool_purge(acked_before: str, dry_run: bool, reason: str, config_path: Path) -> None:
    """Delete messages the centre acknowledged before a day, with their attempts and records (and
    the sign-in attempts of that time), for retention. Refused inside the region's minimum
    retention (RegionProfile.minimum_retention)."""
    from adapter.plugin.manager import PluginHost
    from adapter.spool import manual

    day = parse_day(acked_before, "--acked-before")
    settings = _settings(config_path)
    region = PluginHost.load().region(settings.centre.region)
    with state_store(settings) as store:
        try:
            done = manual.purge(store, local_day_start(day), keep=region.minimum_retention,
                                label=f"acked before {day:%Y-%m-%d}", reason=reason, dry_run=dry_run)
        except manual.InsideRetention as exc:
            raise click.ClickException(
                f"refused: region {region.name} keeps what the centre acknowledged for "
                f"{exc.keep.days} days (minimum_retention), so --acked-before can be "
                f"{local(exc.latest):%Y-%m-%d} at the latest") from exc
    click.echo(("would delete " if dry_run else "deleted ")
               + done.result.removesuffix(" deleted") + f", acknowledged before {day:%Y-%m-%d} {_zone()}")


@spool.command("recheck")
@click.argument("record_ids", type=int, nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every record parked malformed, invalid or unmapped.")
@click.option("--infno", default=None, help="Only records of this transaction.")
@reason_option
@config_option
@handled
def spool_recheck(record_ids: tuple[int, ...], all_: bool, infno: str | None, reason: str, config_path: Path) -> None:
    """Read the HIS rows of parked malformed, invalid or unmapped records again by their key,
    once fixed in the HIS; they go through the checks at the next cycle."""
    from adapter.app import build_adapter
    from adapter.spool import audit

    if not record_ids and not all_:
        raise click.UsageError("name record IDs or give --all")
    adapter = build_adapter(_settings(config_path))
    try:
        done = adapter.cycle.extract.recheck(None if all_ else list(record_ids), infno)
        replaced = sum(1 for item in done if item.replaced)
        target = ("every record parked malformed, invalid or unmapped" if all_
                  else audit.ids_text("record", record_ids)) + (f" of {infno}" if infno else "")
        audit.record(adapter.store, audit.Action.RECHECK, target, reason=reason,
                     result=f"{replaced} of {len(done)} record(s) read again from the HIS")
    finally:
        adapter.close()
    for item in done:
        named = " ".join(filter(None, (f"record {item.record_id}", item.infno, item.business_key)))
        click.echo(f"{named}: {item.note}")
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
    from adapter.spool import audit
    from adapter.spool.outbox import resolve_by_hand
    from adapter.state.store import utcnow

    if verdict is None:
        raise click.UsageError("say what the centre holds: --acked or --resend")
    who = audit.current_user()
    note = f"settled by hand ({verdict}) by {who} at {utcnow():%Y-%m-%d %H:%M:%S} UTC" + (
        f": {reason}" if reason else "")
    settings = _settings(config_path)
    done = "marked sent" if verdict == "acked" else "sent again in the next cycle"
    with state_store(settings) as store:
        try:
            count = resolve_by_hand(store, message_id, acked=verdict == "acked", note=note)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
        # the "adapter.audit" log line comes with the row
        audit.record(store, audit.Action.RESOLVE, f"message {message_id}", reason=reason, who=who,
                     result=f"{verdict}: {count} record(s) {done}")
    click.echo(f"message {message_id}: {count} record(s) {done}")
