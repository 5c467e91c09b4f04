"""``catalog``: download, import, list, compare and roll back the national catalogues."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from adapter.cli.common import _settings, config_option, handled, json_option, state_store
from adapter.state.store import utcnow


@click.group()
def catalog() -> None:
    """National catalogues (1301 drugs, 1305 services, 1307 diagnoses...): versions in use."""


@catalog.command("sync")
@click.option("--kind", "kinds", multiple=True, help="Catalogue infno (default: [catalog] kinds).")
@click.option("--accept-mass-change", is_flag=True, help="Use a download that retires many codes.")
@config_option
@handled
def catalog_sync(kinds: tuple[str, ...], accept_mass_change: bool, config_path: Path) -> None:
    """Download what is newer than each active version, validate it, switch it in."""
    from adapter.app import build_adapter
    from adapter.errors import AdapterError

    settings = _settings(config_path)
    wanted = list(kinds) or settings.catalog.kinds
    if not wanted:
        raise AdapterError("no catalogue to sync: pass --kind or set [catalog] kinds")
    adapter = build_adapter(settings, interactive=True)  # bars on a terminal, else a log line
    failed = []
    try:
        for kind in wanted:
            try:
                result = adapter.catalog_sync.sync(kind, accept_mass_change=accept_mass_change)
            except AdapterError as exc:
                failed.append(kind)
                click.echo(f"{kind}: {exc}", err=True)
                continue
            version = result.version
            if result.outcome == "up to date":
                click.echo(f"{kind}: up to date" + (f" at version {version.ver}" if version else ""))
            else:
                assert version is not None
                click.echo(f"{kind}: switched to version {version.ver} ({result.rows_in_file} rows "
                           f"downloaded, {version.rows_total} in the catalogue"
                           + (f", converted from {version.encoding}" if version.encoding == "gb18030" else "")
                           + ")")
    finally:
        adapter.close()
    if failed:
        raise AdapterError(f"not synced: {', '.join(failed)} (the versions in use are unchanged)")


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="Catalogue infno of the file, e.g. 1301.")
@click.option("--data-cnt", type=int, help="Row count the centre declared for the file, if known.")
@click.option("--accept-mass-change", is_flag=True, help="Use a file that retires many codes.")
@config_option
@handled
def catalog_import(file: Path, kind: str, data_cnt: int | None, accept_mass_change: bool,
                   config_path: Path) -> None:
    """Load a catalogue zip downloaded by hand, or a regional XML policy file (--kind policy:...),
    through the same validation."""
    from adapter.catalog.policy_xml import read_policy
    from adapter.catalog.reader import CatalogFile
    from adapter.catalog.store import CatalogStore
    from adapter.catalog.sync import limits_from, spec_for
    from adapter.plugin.manager import PluginHost
    from adapter.progress import reporter

    settings = _settings(config_path)
    region = PluginHost.load().region(settings.centre.region)
    with state_store(settings) as store, reporter(store, settings.progress.every_seconds,
                                                  interactive=True) as progress:
        catalogs = CatalogStore(store)
        if kind in region.policies:
            ver, entries = read_policy(file, region.policies[kind])
            version = catalogs.ingest_entries(kind, ver, entries, source=f"import {file.name}", filename=file.name)
        else:
            spec = spec_for(region, kind)
            rows = CatalogFile(file, limits_from(settings.catalog))
            # without --data-cnt the total is guessed from the file's unpacked size
            with progress.start("catalog", kind, total=data_cnt, estimate=lambda _done: rows.estimated_rows()) as task:
                version = catalogs.ingest(
                    spec, rows, source=f"import {file.name}", declared_rows=data_cnt,
                    accept_mass_change=accept_mass_change, max_retire_share=settings.catalog.max_retire_share,
                    progress=task.advance,
                )
    click.echo(f"{kind}: switched to version {version.ver} from {file.name} "
               f"({version.rows_in_file} rows in the file, {version.rows_total} in the catalogue)")


@catalog.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every version, refused ones too.")
@config_option
@json_option
@handled
def catalog_list(show_all: bool, config_path: Path, as_json: bool) -> None:
    """Active version of each catalogue, its size and age (and refused downloads)."""
    from adapter.catalog.store import CatalogStore

    settings = _settings(config_path)
    with state_store(settings) as store:
        catalogs = CatalogStore(store)
        versions = catalogs.versions()
        reports = {v.id: catalogs.report(v.id) for v in versions if v.status == "refused"}
    shown = versions if show_all else [v for v in versions if v.status == "active"]
    if as_json:
        click.echo(json.dumps([{**asdict(v), "report": reports.get(v.id)} for v in shown],
                              ensure_ascii=False, default=str))
        return
    if not shown:
        click.echo("no catalogue version" + ("" if show_all else " is active; run `catalog sync` or `catalog import`"))
        return
    now = utcnow()
    click.echo(f"{'kind':<6} {'id':>4} {'status':<12} {'version':<16} {'rows':>9}  age       source")
    for v in shown:
        since = v.activated_at or v.created_at
        age = now - since
        click.echo(f"{v.kind:<6} {v.id:>4} {v.status:<12} {v.ver:<16} {v.rows_total:>9}  "
                   f"{age.days}d {age.seconds // 3600:>2}h    {v.source}")
        for problem in (reports.get(v.id) or {}).get("problems", [])[:3]:
            click.echo(f"{'':>24}{problem}")


@catalog.command("rollback")
@click.argument("kind")
@config_option
@handled
def catalog_rollback(kind: str, config_path: Path) -> None:
    """Return KIND to the version that was active before the current one."""
    from adapter.catalog.store import CatalogStore

    settings = _settings(config_path)
    with state_store(settings) as store:
        version = CatalogStore(store).rollback(kind)
    click.echo(f"{kind}: version {version.ver} (id {version.id}) is active again")


@catalog.command("accept")
@click.argument("version_id", type=int)
@config_option
@handled
def catalog_accept(version_id: int, config_path: Path) -> None:
    """Switch in a version held because it retires many codes (after `catalog diff`)."""
    from adapter.catalog.store import CatalogStore

    settings = _settings(config_path)
    with state_store(settings) as store:
        version = CatalogStore(store).accept(version_id)
    click.echo(f"{version.kind}: version {version.ver} (id {version.id}) accepted and active")


@catalog.command("diff")
@click.argument("kind")
@click.option("--new", "new_id", type=int, help="Version id (default: the active one).")
@click.option("--old", "old_id", type=int, help="Version id to compare with (default: the one before).")
@config_option
@json_option
@handled
def catalog_diff(kind: str, new_id: int | None, old_id: int | None, config_path: Path, as_json: bool) -> None:
    """Added, changed and retired codes, and the mapped HIS items each change affects."""
    from adapter.catalog.store import CatalogStore

    settings = _settings(config_path)
    with state_store(settings) as store:
        diff = CatalogStore(store).diff(kind, new_id, old_id)
    if as_json:
        click.echo(json.dumps(asdict(diff), ensure_ascii=False, default=str))
        return
    click.echo(f"{kind}: version {diff.old_id} -> {diff.new_id}: {len(diff.added)} added, "
               f"{len(diff.changed)} changed, {len(diff.retired)} retired")
    for title, items in (("retired", diff.retired), ("changed", diff.changed), ("added", diff.added)):
        for item in items[:200]:
            detail = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in item.get("changes", {}).items())
            his = diff.affected.get(item["code"])
            click.echo(f"  {title:<8} {item['code']:<24} {item['name'][:30]:<30} {detail}"
                       + (f"  [mapped from {', '.join(his)}]" if his else ""))


