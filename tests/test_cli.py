"""The run and status commands as an operator uses them."""

from __future__ import annotations

from click.testing import CliRunner

from adapter.cli import main
from adapter.cli.common import EXIT_SOMETHING_FAILED
from adapter.rehearsal.sample_his import generate_sample_his, write_mapping_csv
from tests.conftest import config_text


def _setup(tmp_path, centre, **his_kwargs):
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=3, lines_per_visit=5, **his_kwargs)
    config = tmp_path / "adapter.toml"
    config.write_text(
        config_text(his_url=his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url),
        encoding="utf-8",
    )
    mapping = write_mapping_csv(tmp_path / "mapping.csv", his.mapping_rows)
    runner = CliRunner()
    assert runner.invoke(main, ["mapping", "import", str(mapping), "--config", str(config)]).exit_code == 0
    return his, config, runner


def test_run_once_exits_zero_when_everything_went(tmp_path, centre):
    his, config, runner = _setup(tmp_path, centre, unmapped_share=0, invalid_share=0, malformed_share=0)
    result = runner.invoke(main, ["run", "--once", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"extracted {his.lines}, parked 0" in result.stdout
    assert len(centre.ledger.fee_lines) == his.lines

    status = runner.invoke(main, ["status", "--config", str(config)])
    assert status.exit_code == 0
    assert f"sent {his.lines}" in status.stdout
    assert f"his.2301 = {his.lines}" in status.stdout
    assert "oldest unsent: -" in status.stdout
    assert f"2301 住院费用明细上传: {his.lines} record(s)" in status.stdout


def test_run_once_exits_three_when_something_was_parked(tmp_path, centre):
    _his, config, runner = _setup(tmp_path, centre, unmapped_share=0.3, seed=4)
    result = runner.invoke(main, ["run", "--once", "--config", str(config)])
    assert result.exit_code == EXIT_SOMETHING_FAILED, result.output
    status = runner.invoke(main, ["status", "--config", str(config)])
    assert "[unmapped] no national code mapped for item" in status.stdout
