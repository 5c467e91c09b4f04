"""Oracle for the pipeline's behaviour: extract, map and check, build over generated HIS
databases, then one digest of what the ledger holds. Two commits whose digests match wrote
the same records and messages for the same inputs (an optimisation must keep it so):

    .venv/bin/python bench/ledger_digest.py [--lines 20000] [--show]
    bench/at-commit.sh d0a4710 .venv/bin/python bench/ledger_digest.py

The inputs (all made from fixed seeds):

- ``bench``: benchkit's HIS (2301 only) with its planted bad rows: unmapped items, amounts that
  are not qty x price, unreadable quantities, one refund a stay;
- ``sample-nhsa`` and ``sample-hunan``: the rehearsal's sample HIS (every transaction it has
  data for, the policy-rule cases, larger shares of bad lines) with every kind of bad value of
  tests/test_bad_rows.py planted in fee lines (bytes, control characters, numbers too long or
  none, placeholder dates, a key longer than the ledger's), a fee line whose visit row is
  missing; once for nhsa and once for hunan (its code readings and empty numbers as zero).

What is digested, per input, in a stable order: every record (infno, business key, group key,
status, park kind and reason, raw, payload, which message it is in, counted from that input's
first), every message (infno, status, group key, area, payload, line count), every policy
finding and remembered stay. Timestamps and ids are left out, as they differ by nature; a
record's message is named by its place among the messages instead. A park reason names
record ids, which are the same for the same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchkit

#: bad values planted in the sample's fee lines (a SET clause each), as tests/test_bad_rows.py does
BAD_VALUES = (
    "item_code = CAST(x'ff' AS TEXT)", "order_no = x'fffe41'", "order_no = 'YZ' || char(0) || '1'",
    "order_no = 'YZ' || char(27) || '1'", "qty = '1e400'", "qty = '1e999999999'", "qty = 'NaN'",
    "qty = '-Infinity'", "qty = 9e999", "qty = 'abc'", "qty = ''", "qty = '  2.50000 '", "qty = 2.5",
    "unit_price = '12.345'", "amount = '123456789012345.00'", "amount = '1.005'",
    "charged_at = '1900-01-01 00:00:00'", "charged_at = '2099-12-31 00:00:00'", "charged_at = 'yesterday'",
    "charged_at = '2026-11-02T10:00:00'", "charged_at = '2026-11-02 10:00:00.250'", "item_code = ''",
    "item_code = '  '", "dept_code = ''", "feedetl_sn = '0000'", "feedetl_sn = 'A1'",
    "feedetl_sn = '" + "9" * 300 + "'",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000, help="fee lines of benchkit's HIS (default 20000)")
    parser.add_argument("--visits", type=int, default=40, help="stays of the sample HIS (default 40)")
    parser.add_argument("--show", action="store_true", help="also print each input's own digest and counts")
    options = parser.parse_args()
    print(benchkit.code_line(), file=sys.stderr)
    whole = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="yibao-digest-") as scratch:
        for name, (digest, counts) in _inputs(Path(scratch), options.lines, options.visits):
            whole.update(f"{name}:{digest}\n".encode())
            if options.show:
                print(f"{name}: {digest} {counts}")
    print(f"ledger digest: {whole.hexdigest()}")


def _inputs(scratch: Path, lines: int, visits: int) -> Iterator[tuple[str, tuple[str, dict[str, int]]]]:
    his = benchkit.make_his(scratch / "bench.db", lines)
    yield "bench", _run(scratch, "bench", benchkit.config_toml(his_url=his.url, state_url=_state(scratch, "bench")))
    for region in ("nhsa", "hunan"):
        url = _sample_his(scratch / f"sample-{region}.db", visits)
        state = _state(scratch, f"sample-{region}")
        yield f"sample-{region}", _run(scratch, f"sample-{region}", _sample_config(url, state, region))


def _state(scratch: Path, name: str) -> str:
    return f"sqlite:///{scratch / (name + '-state.db')}"


def _sample_his(path: Path, visits: int) -> str:
    """The rehearsal's sample HIS, with more bad lines than its default and every planted value."""
    from adapter.rehearsal.sample_his import generate_sample_his

    url = f"sqlite:///{path}"
    generate_sample_his(url, visits=visits, seed=11, unmapped_share=0.05, invalid_share=0.05, malformed_share=0.03,
                        outpatient_visits=visits // 2, with_rule_cases=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        victims = [row[0] for row in conn.execute(
            "SELECT f.line_id FROM fee_lines f WHERE f.init_feedetl_sn IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM fee_lines r WHERE r.visit_id = f.visit_id AND r.init_feedetl_sn = f.feedetl_sn) "
            "ORDER BY f.line_id")]
        for line_id, assignment in zip(victims[1::3], BAD_VALUES, strict=False):
            conn.execute(f"UPDATE fee_lines SET {assignment} WHERE line_id = ?", (line_id,))
        # a fee line whose visit row is missing: keyed by its place in the HIS
        conn.execute("UPDATE fee_lines SET visit_id = 999999 WHERE line_id = ?", (victims[-1],))
    finally:
        conn.close()
    return url


def _sample_config(his_url: str, state_url: str, region: str) -> str:
    """benchkit's configuration with every transaction of the demo read by the sample schema's
    queries (its 2301-only fee query taken out), for ``region``."""
    from adapter.rehearsal.demo import DEMO_TRANSACTIONS
    from adapter.rehearsal.sample_queries import sample_sources_toml, settlement_query_toml

    transactions = ", ".join(f'"{infno}"' for infno in DEMO_TRANSACTIONS)
    config = benchkit.config_toml(his_url=his_url, state_url=state_url, centre="lines_per_message = 7",
                                  schedule="batch_size = 150")
    fee_query = config.index("fee_query = '''")
    config = config[:fee_query] + config[config.index("'''", fee_query + 15) + 3:]
    config = config.replace('transactions = ["2301"]', f"transactions = [{transactions}]\n{settlement_query_toml()}")
    config = config.replace('region = "nhsa"', f'region = "{region}"')
    if region == "hunan":  # its gateway signs with a key pair (the same test values: nothing is sent)
        config = config.replace("paasid = {", "access_key = {").replace("token = {", "secret_key = {")
    return config + "\n" + sample_sources_toml()


def _run(scratch: Path, name: str, config: str) -> tuple[str, dict[str, int]]:
    """extract, check, build as a cycle runs them (each in a fresh process), then the digest."""
    state_url = config.split('[state]\nurl = "', 1)[1].split('"', 1)[0]
    benchkit.import_sample_mapping(state_url)
    for stage in ("extract", "check", "build"):
        benchkit.in_child(_stage, config, stage)
    return _digest(state_url)


def _stage(config: str, stage: str) -> None:
    from adapter.flow.report import CycleReport

    adapter = benchkit.build(config)
    try:
        getattr(adapter.cycle, stage).run(CycleReport())
    finally:
        adapter.close()


def _digest(state_url: str) -> tuple[str, dict[str, int]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(state_url)
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT coalesce(min(id), 0) FROM message")).scalar_one()
            for table, query in _QUERIES.items():
                rows = conn.execute(text(query), {"first": first}).all()
                counts[table] = len(rows)
                for row in rows:
                    digest.update(json.dumps([table, *row], ensure_ascii=False, default=str).encode())
                    digest.update(b"\n")
            for status, kind, count in conn.execute(text(
                    "SELECT status, coalesce(park_kind, ''), count(*) FROM record GROUP BY 1, 2 ORDER BY 1, 2")):
                counts[f"{status} {kind}".strip()] = count
    finally:
        engine.dispose()
    return digest.hexdigest(), counts


_QUERIES: dict[str, Any] = {
    "record": "SELECT infno, business_key, group_key, status, park_kind, park_reason, raw, payload, "
              "message_id - :first FROM record ORDER BY infno, business_key",
    "message": "SELECT id - :first, infno, status, group_key, insuplc_admdvs, payload, line_count, attempts "
               "FROM message ORDER BY id",
    "finding": "SELECT rule_id, severity, outcome, stay_key, feedetl_sn, line_id, his_item_code, dept, doctor, "
               "fee_time, amount, message, evidence FROM finding ORDER BY stay_key, rule_id, feedetl_sn, message",
    "policy_stay": "SELECT stay_key, psn_no, adm_time, dscg_time, main_diag_code, outpatient FROM policy_stay "
                   "ORDER BY stay_key",
}


if __name__ == "__main__":
    sys.exit(main())
