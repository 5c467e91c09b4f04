"""The plugin contract: every type a plugin hands to the core, in one public module.

A regional plugin imports from here (and :data:`hookimpl`), and from nothing else in
``adapter`` but :mod:`adapter.errors` and :mod:`adapter.jsonio`: region profiles and their
dialects, gateway signers, transaction specs, catalogue layouts, validation and policy rules,
penalty tables, and the canonical records those receive (fee lines, settlements). This layer
imports nothing above it: only the records and the errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from adapter.plugin import hookimpl
from adapter.plugin.catalogues import CatalogRole, CatalogSpec, PolicySpec
from adapter.plugin.editions import EditionDifference
from adapter.plugin.policy import EarlierStay, Hit, Param, PolicyRule, Stay
from adapter.plugin.rules import Finding, Rule, Severity
from adapter.plugin.transactions import ChildSpec, FieldKind, FieldSpec, TransactionSpec, f
from adapter.records import FeeLine, MappedFeeLine, MappingKind, Settlement

UrlStyle = Literal["single", "per_path", "base_infno"]
#: how 9101 carries the file: Base64 in fsUploadIn.in, or a multipart/form-data file part
FileUpload = Literal["base64", "multipart"]
#: how an optional number the HIS left empty is sent: JSON null, or 0 with the field's decimals
EmptyNumber = Literal["null", "zero"]

#: The national single endpoint (reference §2.1 a).
SINGLE_ENDPOINT = "/fsi/api/rsfComIfsService/callService"


class Dialect(Protocol):
    """How a region words the business payloads (the ``input`` of each transaction)."""

    def sign_in_input(self, opter: str, mac: str, ip: str) -> dict[str, Any]:
        """The ``input`` of 9001."""
        ...

    def sign_no_from_output(self, output: Mapping[str, Any]) -> str:
        """Read sign_no out of a 9001 ``output``."""
        ...

    def sign_out_input(self, opter: str, sign_no: str) -> dict[str, Any]:
        """The ``input`` of 9002."""
        ...

    def session_expired(self, err_msg: str) -> bool:
        """Whether a refusal means the sign_no is no longer valid (sign in again and resend)."""
        ...


    def outcome_query(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The query (infno, input) that shows whether ``payload`` reached the centre, if any."""
        ...

    def message_keys(self, infno: str, payload: Mapping[str, Any]) -> set[str]:
        """The business keys a message carries (e.g. its feedetl_sn values)."""
        ...

    def committed_keys(self, infno: str, payload: Mapping[str, Any], output: Mapping[str, Any]) -> set[str]:
        """The business keys of ``payload`` that a query's ``output`` shows the centre holding."""
        ...

    def reversal_input(self, infno: str, payload: Mapping[str, Any], omsgid: str) -> dict[str, Any]:
        """The ``input`` of a 2601 reversal of the attempt ``omsgid`` of ``payload``."""
        ...

    def nothing_to_reverse(self, err_msg: str) -> bool:
        """Whether a 2601 refusal means the centre never took the original."""
        ...

    def mdtrt_id_from_output(self, infno: str, output: Mapping[str, Any]) -> str:
        """The centre's mdtrt_id in the reply to a registration (2401, 2201)."""
        ...

    def visit_from_inquiry(self, infno: str, payload: Mapping[str, Any], output: Mapping[str, Any]) -> str | None:
        """The mdtrt_id a registration got, from the query that showed it committed."""
        ...

    def fund_pay_sumamt(self, settlement: Settlement) -> Decimal:
        """fund_pay_sumamt of a settlement as the region reconciles it (3201/3202)."""
        ...

    def record_defaults(self, infno: str) -> Mapping[str, str]:
        """Values for empty record fields ("node.field" for a child list), e.g. hosp_appr_flag."""
        ...

    def exp_content(self, line: MappedFeeLine) -> str:
        """The 扩展内容 (exp_content) of a fee line the HIS left empty ("" for none)."""
        ...


class Signer(Protocol):
    """Computes the gateway's HTTP headers for one request body."""

    def headers(self, body: bytes, infno: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class SignerSpec:
    """A gateway scheme: its name, the credentials it needs, and how to make a signer."""

    name: str
    description: str
    credentials: tuple[str, ...]
    #: (resolved credentials, the region's gateway_options) -> signer
    factory: Callable[[Mapping[str, str], Mapping[str, str]], Signer]


@dataclass(frozen=True)
class PenaltyBand:
    """One row of a penalty discretion table: a fund loss up to ``max_share`` of last year's
    fund payments (None: no upper bound) is fined ``min_multiple``-``max_multiple`` times."""

    max_share: float | None
    min_multiple: float
    max_multiple: float
    note: str = ""


@dataclass(frozen=True)
class RegionProfile:
    """Everything that differs between regions, stated as data plus a dialect."""

    name: str
    description: str
    dialect: Dialect
    gateway: str = "tif"
    url_style: UrlStyle = "single"
    infver: str = "V1.0"
    recer_sys_code: str = "YBXT"
    paths: Mapping[str, str] = field(default_factory=dict)
    single_path: str = SINGLE_ENDPOINT
    content_type: str = "application/json;charset=utf-8"
    #: header fields some regions add to every envelope (e.g. enc_type)
    extra_envelope: Mapping[str, str] = field(default_factory=dict)
    #: non-secret settings of the gateway scheme (e.g. CSB api_version)
    gateway_options: Mapping[str, str] = field(default_factory=dict)
    #: record transactions this region speaks, by infno (see adapter.transactions)
    transactions: Mapping[str, TransactionSpec] = field(default_factory=dict)
    #: an optional number the HIS left empty: "null" sends JSON null, "zero" sends 0 written
    #: with the field's decimals (0.00 for a (16,2) amount), as an edition whose general rules
    #: say 类型为数值的参数，如果为空，必须传“0” wants (hunan, V1.1.27 §4.4). A required number
    #: left empty is parked either way: a missing amount is a HIS error, not a zero.
    #: The default stays "null", what every region has sent so far: the national reference the
    #: project carries (reference/nhsa-interface.md) states no rule for empty numbers; the only
    #: one known is in a provincial edition, so a region takes "zero" when its edition says so.
    empty_number: EmptyNumber = "null"
    #: transactions a 2601 reversal may cancel (reference §5)
    reversible: frozenset[str] = frozenset({"2102", "2103", "2207", "2208", "2304", "2305", "2401"})
    #: file catalogues this region downloads, by infno (see adapter.plugin.catalogues)
    catalogues: Mapping[str, CatalogSpec] = field(default_factory=dict)
    #: regional XML policy files, by kind ("policy:..."), each with the XSD the plugin ships
    policies: Mapping[str, PolicySpec] = field(default_factory=dict)
    #: policy-rule settings from this region's documents, by rule id: parameters, and optionally
    #: "enabled", "severity" and "source" (the document the numbers come from)
    rule_set: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: penalty discretion table for art. 38 losses, if the region publishes one (source, bands)
    penalty_table: tuple[PenaltyBand, ...] = ()
    penalty_source: str = ""
    #: the ``ver`` of a first download (regional: "0", "v0000", "F001_0000_A"...)
    catalogue_initial_ver: str = "0"
    #: the form of 9101 this region's centre accepts (reference §2.3)
    file_upload: FileUpload = "base64"
    #: the area codes this region's centre serves (first = the centre's own, used in inf_refmsgid)
    areas: tuple[str, ...] = ()
    #: the published edition of the interface tables this region follows (adapter/spec/data)
    interface_edition: str = "hunan-v1.1.27"
    #: each way the region departs from that edition, with its source
    edition_differences: tuple[EditionDifference, ...] = ()

    def infno_for_path(self, path: str) -> str | None:
        """The transaction a URL path addresses (None: the body's infno decides, single style)."""
        path = path.split("?", 1)[0].rstrip("/")
        if self.url_style == "single":
            if not path.endswith(self.single_path.rstrip("/")):
                raise KeyError(path)
            return None
        if self.url_style == "base_infno":
            return path.rsplit("/", 1)[-1]
        for infno, suffix in self.paths.items():
            if path.endswith(suffix):
                return infno
        raise KeyError(path)

    def url_for(self, base_url: str, infno: str) -> str:
        """The URL a transaction is posted to under this region's URL style."""
        base = base_url.rstrip("/")
        if self.url_style == "single":
            return base + self.single_path
        if self.url_style == "base_infno":
            return f"{base}/{infno}"
        try:
            return base + self.paths[infno]
        except KeyError:
            raise KeyError(f"region {self.name} has no path for transaction {infno}") from None


__all__ = [
    "SINGLE_ENDPOINT", "CatalogRole", "CatalogSpec", "ChildSpec", "Dialect", "EarlierStay", "EditionDifference",
    "EmptyNumber", "FeeLine", "FieldKind", "FieldSpec", "FileUpload", "Finding", "Hit", "MappedFeeLine",
    "MappingKind", "Param", "PenaltyBand", "PolicyRule", "PolicySpec", "RegionProfile", "Rule", "Settlement",
    "Severity", "Signer", "SignerSpec", "Stay", "TransactionSpec", "UrlStyle", "f", "hookimpl",
]
