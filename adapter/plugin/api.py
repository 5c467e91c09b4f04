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
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from adapter.plugin import hookimpl
from adapter.plugin.budget import DEFAULT_ADVANCE_SHARE, DEFAULT_SHARING, OverspendBand, OverspendSharing
from adapter.plugin.catalogues import CatalogRole, CatalogSpec, PolicySpec
from adapter.plugin.editions import EditionDifference
from adapter.plugin.outcomes import InquiryAnswer, LostReply, LostReplyMethod, RefusalMeaning, Verdict
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


#: the mark :func:`settled_figure` puts on a fund_pay_sumamt hook
_SETTLED_FIGURE = "yibao_settled_figure"

_Hook = Callable[..., Any]


def settled_figure(hook: _Hook) -> _Hook:
    """Marks a dialect's ``fund_pay_sumamt`` that returns the settlement's own figure unchanged.
    Reconciliation then reads a month without building a Settlement a row for the hook (most
    of the time of reading a million). A subclass that overrides the method without the mark
    is called for every settlement, as any hook is."""
    setattr(hook, _SETTLED_FIGURE, True)
    return hook


def is_settled_figure(hook: Callable[[Settlement], Decimal]) -> bool:
    """Whether ``hook`` (a bound method or a function) carries :func:`settled_figure`'s mark."""
    return getattr(hook, _SETTLED_FIGURE, False) is True


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

    def session_refused(self, err_msg: str) -> bool:
        """Whether a refusal names the session or the sign_no (sign in again once and resend),
        whatever its wording says happened to it."""
        ...

    # -- a lost reply (see adapter.plugin.outcomes) ---------------------------------------
    def inquiry(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """INQUIRE: the query (infno, input) that shows whether ``payload`` reached the centre."""
        ...

    def inquiry_verdict(self, infno: str, payload: Mapping[str, Any], output: Any) -> InquiryAnswer:
        """What the query's ``output`` says; UNDECIDED when it is not the shape the query answers in."""
        ...

    def withdrawal(self, infno: str, payload: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """WITHDRAW: the calls (infno, input) that withdraw exactly what ``payload`` carried."""
        ...

    def reversal_input(self, infno: str, payload: Mapping[str, Any], omsgid: str) -> dict[str, Any]:
        """REVERSE: the ``input`` of a 2601 reversal of the attempt ``omsgid`` of ``payload``."""
        ...

    def refusal_meaning(self, err_msg: str) -> RefusalMeaning:
        """What a refusal to a withdrawal, reversal, query or repeat says about the centre's data."""
        ...

    def answer_mismatch(self, infno: str, payload: Mapping[str, Any], output: Any) -> str | None:
        """Why an infcode-0 answer cannot be the answer to ``payload`` (its ``result`` lines name
        other lines, a registration answer names another visit), or None when it can be."""
        ...

    def answer_names_its_request(self, infno: str) -> bool:
        """Whether :meth:`answer_mismatch` always tells another request's infcode-0 answer from
        this one's (2301 and 2204 answer a result line naming each line sent). Only then may the
        answered attempt's row wait to be written with the ack: until it is written, a daemon
        sharing the spool cannot see that its inf_refmsgid already answered a request."""
        ...

    def mdtrt_id_from_output(self, infno: str, output: Mapping[str, Any]) -> str:
        """The centre's mdtrt_id in the reply to a registration (2401, 2201)."""
        ...

    def confirmation(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """A query (infno, input) that confirms a registration's answer is its own, where the
        answer cannot show it (2401 answers only mdtrt_id), or None."""
        ...

    def confirmed(self, infno: str, payload: Mapping[str, Any], mdtrt_id: str, output: Any) -> bool | None:
        """Whether the confirmation query's ``output`` shows ``mdtrt_id`` as this registration's:
        True, False (another's), or None (the answer cannot tell)."""
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
    #: how the unknown outcome of each transaction is settled, by infno, with the passage of
    #: the edition that allows it (see adapter.plugin.outcomes). A transaction missing here
    #: stays unknown after a lost reply until a person settles it (``spool resolve``).
    lost_replies: Mapping[str, LostReply] = field(default_factory=dict)
    #: words of a refusal (infcode -1) that say the centre could not take the message now
    #: ("系统繁忙"): the message is retried with backoff instead of parked. A refusal with no
    #: err_msg at all is retried the same way: it says nothing a person could act on.
    transient_answers: tuple[str, ...] = ()
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
    #: where that edition contradicts itself (two tables under one code, a dictionary shorter
    #: than its own notes, a length its own transactions break), the one reading the region takes
    edition_readings: tuple[EditionDifference, ...] = ()
    #: each way the region departs from that edition, with its source
    edition_differences: tuple[EditionDifference, ...] = ()
    #: codes a HIS writes the national baseline's way, rewritten as the region's edition writes
    #: them before the checks ("field" or "node.field" -> {baseline code: edition code}); hunan:
    #: med_type 21 -> 2101 (普通住院, 6.28 of V1.1.27)
    code_readings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: how soon after the HIS produced a record its upload must reach the centre, by infno, as
    #: the region's documents set it; ``report transmission`` measures every record against it
    upload_deadlines: Mapping[str, timedelta] = field(default_factory=dict)
    #: the deadline of a transaction missing from ``upload_deadlines``: one day, as for the
    #: real-time uploads (实时上传) the centre expects within 24 hours
    upload_deadline: timedelta = timedelta(hours=24)
    #: how long the spool keeps what the centre acknowledged: ``spool purge`` refuses to delete
    #: anything younger. Three years is a default of this project, not a figure from a rule it
    #: carries: a region (or a hospital's own record-keeping rules) sets the one that applies
    minimum_retention: timedelta = timedelta(days=3 * 365 + 1)
    #: the share of a month's fund payments (up to its budget) the centre advances under the
    #: global budget (总额预算); the rest is withheld for the year-end assessment (``report budget``)
    budget_advance_share: Decimal = DEFAULT_ADVANCE_SHARE
    #: how a year's overspend of the budget is shared by fund and hospital, with its source
    #: (adapter.plugin.budget; DEFAULT_SHARING where the region declares none)
    budget_sharing: OverspendSharing = DEFAULT_SHARING

    @property
    def table_changes(self) -> tuple[EditionDifference, ...]:
        """How the region reads its edition's tables: its readings, then its differences."""
        return self.edition_readings + self.edition_differences

    def deadline_for(self, infno: str) -> timedelta:
        """How long after the HIS produced a record of ``infno`` its upload is on time."""
        return self.upload_deadlines.get(infno, self.upload_deadline)

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
    "SINGLE_ENDPOINT", "CatalogRole", "CatalogSpec", "ChildSpec", "Dialect", "EarlierStay",
    "EditionDifference", "EmptyNumber", "FeeLine", "FieldKind", "FieldSpec", "FileUpload", "Finding", "Hit",
    "InquiryAnswer", "LostReply", "LostReplyMethod", "MappedFeeLine", "MappingKind", "OverspendBand",
    "OverspendSharing", "Param", "PenaltyBand",
    "PolicyRule", "PolicySpec", "RefusalMeaning", "RegionProfile", "Rule", "Settlement", "Severity", "Signer",
    "SignerSpec", "Stay", "TransactionSpec", "UrlStyle", "Verdict", "f", "hookimpl",
]
