"""TLS to the centre: a gateway with a private CA is reached by naming that CA
([centre] ca_bundle, or $SSL_CERT_FILE), a certificate nobody vouches for is refused in one clear
sentence, and tls_verify = false works with a warning. The simulated centre is served over
HTTPS on 127.0.0.1 with a CA and server certificate made for the test."""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.app import build_adapter
from adapter.cli import main
from adapter.config import load_settings
from adapter.errors import ConfigError, TransientDeliveryError
from adapter.outbound.transport import HttpTransport
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.server import SimulatedCentre
from adapter.rehearsal.sample_his import SampleHis
from tests.conftest import centre_secrets, config_text, import_sample_mapping, region_profile


def _pem(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yibao test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        _pem(folder, "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        _pem(folder, "server.pem", server.public_bytes(serialization.Encoding.PEM)),
        _pem(folder, "server.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())),
    )


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    return _make_pki(tmp_path / "pki")


@pytest.fixture
def https_centre(pki: tuple[Path, Path, Path]) -> Iterator[tuple[SimulatedCentre, str]]:
    """The simulated centre (nhsa's gateway) behind TLS: its listening socket wrapped before it
    serves, so every connection is a TLS one. Yields the centre and its https URL."""
    _, cert, key = pki
    profile = region_profile("nhsa")
    centre = SimulatedCentre(gateway=profile.gateway, secrets=centre_secrets(profile.gateway), region=profile,
                             faults=FaultPlan())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = centre._server  # the one place the test reaches in: the centre has no TLS of its own
    server.socket = context.wrap_socket(server.socket, server_side=True)
    centre.start()
    try:
        yield centre, centre.url.replace("http://", "https://")
    finally:
        centre.stop()


def _config(folder: Path, url: str, extra_centre: str = "", logging: str = "", his_url: str = "sqlite://") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "adapter.toml"
    config.write_text(config_text(his_url=his_url, state_url="sqlite:///state.db", centre_url=url,
                                  extra_centre=extra_centre) + logging, encoding="utf-8")
    return config


def _import_mapping(config: Path, his: SampleHis) -> None:
    adapter = build_adapter(load_settings(config))
    try:
        import_sample_mapping(adapter, his)
    finally:
        adapter.close()


def _sign_in(config: Path) -> str:
    adapter = build_adapter(load_settings(config))
    try:
        return adapter.client.sign_no()
    finally:
        adapter.close()


def test_the_named_ca_makes_the_gateway_trusted(tmp_path, pki, https_centre):
    centre, url = https_centre
    ca, _, _ = pki
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca.read_bytes())
    config = _config(folder, url, 'ca_bundle = "ca.pem"')  # relative: beside the configuration
    sign_no = _sign_in(config)
    assert sign_no in centre.ledger.sign_nos  # 9001 went over TLS and was answered


def test_an_unknown_ca_is_refused_in_one_clear_sentence(tmp_path, https_centre, sample_his, monkeypatch):
    centre, url = https_centre
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    config = _config(tmp_path / "etc", url, his_url=sample_his.url)
    _import_mapping(config, sample_his)
    with pytest.raises(TransientDeliveryError) as refused:
        _sign_in(config)
    message = str(refused.value)
    assert "the centre's TLS certificate was refused" in message, message
    assert "unable to get local issuer certificate" in message and "[centre] ca_bundle" in message
    assert not centre.ledger.sign_nos
    # The daemon's cycle says the same on one line, without a traceback, and keeps the data.
    log = tmp_path / "etc" / "adapter.log"
    config.write_text(config.read_text(encoding="utf-8") + f'\n[logging]\nfile = "{log}"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(config)])
    assert "transient failures" in result.output and centre.ledger.accepted["2301"] == 0, result.output
    written = log.read_text(encoding="utf-8")
    refusals = [line for line in written.splitlines() if "the centre's TLS certificate was refused" in line]
    assert refusals and "Traceback" not in written, written


def test_ssl_cert_file_is_honoured_without_a_ca_bundle(tmp_path, pki, https_centre, monkeypatch):
    centre, url = https_centre
    ca, _, _ = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert _sign_in(_config(tmp_path / "etc", url)) in centre.ledger.sign_nos


def test_tls_verify_off_works_and_says_so(tmp_path, https_centre, sample_his):
    centre, url = https_centre
    folder = tmp_path / "etc"
    config = _config(folder, url, "tls_verify = false", his_url=sample_his.url,
                     logging='\n[logging]\nformat = "json"\nfile = "adapter.log"\n')
    _import_mapping(config, sample_his)
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(config)])
    assert "TLS" not in result.output and "error:" not in result.output, result.output
    assert centre.ledger.accepted["2301"] > 0  # the fee lines went over TLS
    lines = [json.loads(line) for line in (folder / "adapter.log").read_text(encoding="utf-8").splitlines()]
    warned = [line for line in lines if line.get("action") == "tls_verify_off"]
    assert warned and warned[0]["level"] == "WARNING" and "tls_verify = false" in warned[0]["message"]
    assert any(line.get("action") == "sign_in" for line in lines), lines  # and it went through


def test_a_ca_bundle_that_cannot_be_read_stops_the_start(tmp_path):
    folder = tmp_path / "etc"
    config = _config(folder, "https://127.0.0.1:9", 'ca_bundle = "missing.pem"')
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(config)])
    assert result.exit_code == 1
    assert f"[centre] ca_bundle {folder / 'missing.pem'}: cannot be read" in result.output, result.output
    (folder / "missing.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a PEM file of CA certificates"):
        HttpTransport(1.0, ca_bundle=str(folder / "missing.pem"))
    assert not (folder / "state.db").exists()  # refused before the state database was opened


def test_check_config_refuses_what_run_would(tmp_path):
    folder = tmp_path / "etc"
    config = _config(folder, "https://127.0.0.1:9", 'ca_bundle = "missing.pem"')
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert f"[centre] ca_bundle {folder / 'missing.pem'}: cannot be read" in result.output, result.output
