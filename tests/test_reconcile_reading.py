"""Reading a month for reconciliation: pages taken from the driver's cursor are SQLAlchemy's
pages, an error of the driver is reported as before, and the visit look-up run with the
driver's own parameters finds what the statement finds; on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from adapter.errors import SourceError
from adapter.reconcile import local
from adapter.reconcile.local import settlement_columns
from adapter.reconcile.run import Reconciler
from adapter.state import schema
from adapter.state.store import StateStore
from tests.test_reconcile import NOVEMBER

QUERY = "SELECT * FROM settlements WHERE setl_time >= :start AND setl_time < :end ORDER BY seq"


def _his(url: str, count: int) -> str:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE settlements (seq INTEGER, setl_id TEXT, mdtrt_id TEXT, psn_no TEXT, "
                          "insutype TEXT, clr_type TEXT, setl_time TEXT, medfee_sumamt TEXT, fund_pay_sumamt TEXT, "
                          "acct_pay TEXT, psn_cash_pay TEXT, refd_setl_flag TEXT, msgid TEXT)"))
        conn.execute(text("INSERT INTO settlements VALUES (:seq, :s, :m, :p, :t, '21', :at, :medfee, '1.5', '0', "
                          ":cash, :refd, :msgid)"), [
            {"seq": n, "s": f"S{n}", "m": f"M{n % 7}", "p": f"P{n % 3}", "t": "310" if n % 4 else "390",
             "at": f"2026-11-{1 + n % 28:02d} 08:00:00", "medfee": f"{n}.25" if n % 5 else f" {n} ",
             "cash": f"{n % 9}.7", "refd": "1" if n % 6 == 0 else "0", "msgid": f"H{n:029d}" if n % 2 else None}
            for n in range(count)])
    engine.dispose()
    return url


@pytest.mark.parametrize("page_size", [1, 7, 1000])
def test_pages_from_the_driver_cursor_are_sqlalchemys_pages(state_url, monkeypatch, page_size):
    his = _his(state_url, 45)
    read = list(settlement_columns(his, QUERY, NOVEMBER, setl_optins="431199", page_size=page_size,
                                   mdtrt_ids_of=lambda keys: {"M3": "C3"} if "M3" in keys else {}))
    monkeypatch.setattr(local, "_READ_FROM_CURSOR", False)
    paged = list(settlement_columns(his, QUERY, NOVEMBER, setl_optins="431199", page_size=page_size,
                                    mdtrt_ids_of=lambda keys: {"M3": "C3"} if "M3" in keys else {}))
    assert read == paged and sum(len(page.setl_id) for page in read) == 45
    assert {m for page in read for m in page.mdtrt_id} >= {"C3", "M4"}


def test_an_error_of_the_driver_while_reading_is_reported_as_before(tmp_path, monkeypatch):
    his = _his(f"sqlite:///{tmp_path / 'his.db'}", 30)
    # the 20th row cannot be computed: SQLite says so only when it gets there, after the first page
    failing = ("SELECT *, CASE WHEN seq = 20 THEN abs(-9223372036854775807 - 1) END AS x FROM settlements "
               "WHERE setl_time >= :start AND setl_time < :end")
    messages = []
    for from_cursor in (True, False):
        monkeypatch.setattr(local, "_READ_FROM_CURSOR", from_cursor)
        pages = settlement_columns(his, failing, NOVEMBER, page_size=8)
        assert len(next(pages).setl_id) == 8
        with pytest.raises(SourceError, match=r"cannot read settlements from the HIS: .*integer overflow") as caught:
            list(pages)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "integer overflow" in messages[0]


def test_the_visit_look_up_finds_the_registered_visits(state_url):
    store = StateStore(state_url)
    try:
        registered = {f"K{n}": f"MDTRT{n}" for n in range(0, 1300, 3)}
        with store.begin() as conn:
            conn.execute(insert(schema.visit), [
                {"his_key": key, "mdtrt_id": mdtrt_id, "registered_by": "H1", "registered_at": datetime(2026, 11, 1)}
                for key, mdtrt_id in registered.items()])
        reconciler = Reconciler(client=None, files=None, store=store, his_url="", settlement_query="",  # type: ignore[arg-type]
                                setl_optins="431199", fixmedins_code="H1")
        asked = {f"K{n}" for n in range(1200)} | {"K-NONE", "K'; DROP TABLE visit; --"}
        assert reconciler._mdtrt_ids(asked) == {k: v for k, v in registered.items() if k in asked}
        assert reconciler._mdtrt_ids({"K3"}) == {"K3": "MDTRT3"} and reconciler._mdtrt_ids(set()) == {}
    finally:
        store.close()


def test_the_visit_columns_are_read_as_the_database_holds_them():
    # the look-up binds and reads them with the driver's own parameters: no type of the adapter's
    # own (a sealed column, say) may come between
    from sqlalchemy import String

    assert type(schema.visit.c.his_key.type) is String and type(schema.visit.c.mdtrt_id.type) is String


def test_a_his_path_is_a_sqlite_file(tmp_path: Path):
    his = _his(f"sqlite:///{tmp_path / 'his.db'}", 3)
    assert [len(page.setl_id) for page in settlement_columns(his, QUERY, NOVEMBER)] == [3]


def test_a_month_is_read_without_visit_look_ups_while_the_adapter_registered_no_visit(tmp_path, monkeypatch):
    """A hospital whose HIS registers its own visits leaves the adapter's visit table empty: every
    stay is the centre's by the HIS's number, so no page is looked up (one look-up a page cost a
    second a month of a million settlements). Once a visit is registered, the pages are looked up."""
    his = _his(f"sqlite:///{tmp_path / 'his.db'}", 40)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        reconciler = Reconciler(client=None, files=None, store=store, his_url=his,  # type: ignore[arg-type]
                                settlement_query=QUERY, setl_optins="431199", fixmedins_code="H1", page_size=7)
        looked_up: list[set[str]] = []
        look_up = reconciler._mdtrt_ids

        def counted(stay_keys: set[str]) -> dict[str, str]:
            looked_up.append(stay_keys)
            return look_up(stay_keys)

        monkeypatch.setattr(reconciler, "_mdtrt_ids", counted)
        month = reconciler._month(NOVEMBER, lambda _n: None)
        assert not looked_up and sum(p.count for p in month.partitions.values()) == 40
        assert {kept[1] for p in month.partitions.values() for batch in p.batches() for kept in batch} \
            == {f"M{n}" for n in range(7)}

        with store.begin() as conn:
            conn.execute(insert(schema.visit).values(his_key="M3", mdtrt_id="C3", registered_by="H1",
                                                     registered_at=datetime(2026, 11, 1)))
        month = reconciler._month(NOVEMBER, lambda _n: None)
        assert len(looked_up) == 6  # 40 settlements, 7 a page
        assert {kept[1] for p in month.partitions.values() for batch in p.batches() for kept in batch} \
            == {f"M{n}" for n in range(7) if n != 3} | {"C3"}
    finally:
        store.close()
