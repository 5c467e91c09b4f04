"""Each bundled region against a simulated centre acting as that region's gateway: the
gateway scheme, URL style, infver, area and payload differences all have to be right, or the
centre refuses (as the real one would)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from adapter.errors import SignInRefused
from adapter.flow.send import BREAKER_FAILURES
from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import centre_secrets, import_sample_mapping, region_profile
from tests.helpers import lines_by_status, run_until_done

#: What each region must show at the centre: gateway headers, one path, hosp_appr_flag, exp_content keys.
EXPECTED = {
    "nhsa": ({"x-tif-signature"}, "/fsi/api/rsfComIfsService/callService", "1", set()),
    "guangdong": ({"x-tif-signature"}, "/2301", "1", {"er_flag"}),
    "hunan": ({"_api_signature", "_api_name"}, "/fsi/api/rsfComIfsService/callService", "0", set()),
    "zhejiang": ({"x-ca-signature", "x-ca-key"}, "/fsi/api/hospFeeDtlService/feeDtlUp", "1",
                 {"er_flag", "hilist_name"}),
}


@pytest.mark.parametrize("region", sorted(EXPECTED))
def test_region_uploads_through_its_own_gateway(region, make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre(region)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        centre_url=centre.url, region=region,
    )
    import_sample_mapping(adapter, sample_his)

    run_until_done(adapter)

    headers, path, flag, exp_keys = EXPECTED[region]
    assert centre.ledger.gateway_headers["2301"] >= headers
    assert centre.ledger.paths["2301"] == {path}
    assert centre.ledger.rejected == {}, centre.ledger.rejected
    sent = lines_by_status(adapter)[RecordStatus.SENT.value]
    assert len(centre.ledger.fee_lines) == len(sent) > 0
    stored = next(iter(centre.ledger.fee_lines.values()))
    assert stored.hosp_appr_flag == flag
    assert set(json.loads(stored.exp_content) if stored.exp_content else {}) == exp_keys


@pytest.mark.parametrize(
    ("adapter_region", "centre_region", "why"),
    [
        ("nhsa", "zhejiang", "缺少服务网关的请求头"),  # TIF headers at an x-ca gateway
        ("guangdong", "nhsa", "服务地址不存在"),  # base+infno URL at a single-endpoint centre
    ],
)
def test_a_wrong_region_never_gets_data_in(adapter_region, centre_region, why, make_adapter,
                                           make_centre, sample_his, tmp_path):
    centre = make_centre(centre_region)
    # Same credentials as the adapter's, but the centre speaks another scheme or URL style.
    centre.secrets.update(centre_secrets(region_profile(adapter_region).gateway))
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        centre_url=centre.url, region=adapter_region,
    )
    import_sample_mapping(adapter, sample_his)

    report = adapter.cycle.run()

    assert report.messages_acked == 0 and report.transient_failures > 0
    assert centre.ledger.fee_lines == {}
    with adapter.store.begin() as conn:
        rows = conn.execute(select(schema.message.c.attempts, schema.message.c.last_error)).all()
    tried = [row for row in rows if row.attempts]
    # The pass stops after BREAKER_FAILURES messages fail in a row; the rest wait untouched.
    assert len(tried) == BREAKER_FAILURES < len(rows)
    assert all(why in row.last_error for row in tried)
    assert adapter.cycle.paused_until is not None
    assert lines_by_status(adapter).get(RecordStatus.SENT.value) is None


def test_infver_of_another_region_is_refused(make_adapter, make_centre, sample_his, tmp_path):
    """Zhejiang expects infver 1.0; an adapter overriding it to V1.0 is refused at 9001."""
    centre = make_centre("zhejiang")
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        centre_url=centre.url, region="zhejiang", extra_centre='infver = "V1.0"',
    )
    import_sample_mapping(adapter, sample_his)
    # A refused sign-in is the session's problem, never the data's: SignInRefused is transient.
    with pytest.raises(SignInRefused, match="接口版本号"):
        adapter.client.sign_no()
    assert region_profile("zhejiang").infver == "1.0"
