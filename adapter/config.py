"""Configuration: one TOML file parsed into frozen, validated models.

The whole file is validated before anything starts; every wrong key or value is reported with
its table, key and line (``check-config``). Credentials are never literal: they are references
``{ env = "VAR" }`` or ``{ file = "/run/secrets/x" }`` resolved when the adapter starts. The
one secret a file can still hold is a database password inside a URL (``[his] url``,
``[state] url``); a file that does is refused while group or others can read it. Relative paths
in the file (SQLite files, key files, the log file, the CA bundle) are relative to the file's
folder (:func:`load_settings`), never to the working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapter.errors import ConfigError, SecurityError
from adapter.state.private import refuse_shared

DEFAULT_CONFIG_PATH = Path("config/adapter.toml")
DEFAULT_STATE_URL = "sqlite:///spool/state.db"

_ADMDVS = r"^\d{6}$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(_Model):
    """Where a secret lives: an environment variable or a file (first line, stripped)."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env = \"VAR\" or file = \"/path\"")
        return self

    def resolve(self) -> str:
        """Read the secret now. Raises :class:`SecurityError` naming the reference, not the value."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecurityError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return Path(self.file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecurityError(f"cannot read secret file {self.file}: {exc.strerror}") from exc


class HisConfig(_Model):
    """The HIS database and the queries that read from it."""

    url: str
    #: the 2301 fee-line query (the same as [sources."2301"]; give one of the two)
    fee_query: str | None = None
    #: settlements of a period, for reconciliation and the self-inspection indicators
    settlement_query: str | None = None
    watermark_column: str = "line_id"
    #: transactions uploaded on the interval, in this order; each reads [sources."<infno>"]
    #: (2301 may read fee_query above)
    transactions: list[str] = Field(default_factory=lambda: ["2301"])

    @field_validator("fee_query")
    @classmethod
    def _binds_watermark(cls, value: str | None) -> str | None:
        for param in (":watermark", ":limit"):
            if value is not None and param not in value:
                raise ValueError(f"the query must use the bind parameter {param}")
        return value


class SourceConfig(_Model):
    """The HIS query of one record transaction."""

    query: str
    watermark_column: str

    @field_validator("query")
    @classmethod
    def _binds_watermark(cls, value: str) -> str:
        checked = HisConfig._binds_watermark(value)
        assert checked is not None
        return checked


class CentreConfig(_Model):
    """The insurance centre: which region plugin speaks to it, and who the hospital is."""

    region: str = "nhsa"
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    fixmedins_code: Annotated[str, Field(pattern=r"^[HP][0-9A-Z]{11}$")]
    fixmedins_name: Annotated[str, Field(min_length=1, max_length=200)]
    mdtrtarea_admvs: Annotated[str, Field(pattern=_ADMDVS)]
    #: 结算经办机构 for 3201/3202 (default: mdtrtarea_admvs)
    setl_optins: Annotated[str, Field(pattern=_ADMDVS)] | None = None
    insuplc_admdvs: Annotated[str | None, Field(pattern=_ADMDVS)] = None
    recer_sys_code: Annotated[str | None, Field(max_length=10)] = None
    infver: Annotated[str | None, Field(max_length=6)] = None
    gateway: str | None = None
    opter_type: Literal["1", "2", "3"] = "1"
    opter: Annotated[str, Field(min_length=1, max_length=30)]
    opter_name: Annotated[str, Field(min_length=1, max_length=50)]
    mac: Annotated[str, Field(max_length=20)] = ""
    ip: Annotated[str, Field(max_length=20)] = "127.0.0.1"
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: how far an answer's refmsg_time may lag the newest one already accepted before it is
    #: taken for an earlier request's answer replayed (0: the centre's clock is one clock)
    answer_clock_tolerance_seconds: Annotated[float, Field(ge=0, le=60)] = 0.0
    lines_per_message: Annotated[int, Field(ge=1, le=1000)] = 50
    #: check the certificate of an https base_url (false: a warning is logged at every start)
    tls_verify: bool = True
    #: PEM file of the CA(s) that sign the gateway's certificate (a hospital's private CA);
    #: none: $SSL_CERT_FILE or $SSL_CERT_DIR when set, else the public CAs of certifi
    ca_bundle: Annotated[str, Field(min_length=1)] | None = None
    credentials: dict[str, SecretRef] = Field(default_factory=dict)

    @field_validator("credentials", mode="before")
    @classmethod
    def _no_literal_secrets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, dict):
                    raise ValueError(
                        f"credential {key!r} is written literally; write "
                        f"{key} = {{ env = \"VAR\" }} or {key} = {{ file = \"/path\" }}"
                    )
        return value

    @model_validator(mode="after")
    def _ca_bundle_verifies(self) -> CentreConfig:
        if self.ca_bundle is not None and not self.tls_verify:
            raise ValueError("ca_bundle is given but tls_verify = false checks no certificate: drop one of them")
        return self

    def resolve_credentials(self) -> dict[str, str]:
        """Resolve every credential reference (at start, never logged)."""
        return {name: ref.resolve() for name, ref in self.credentials.items()}


class StateConfig(_Model):
    """The adapter's own state database (spool, ledger, watermarks, mappings)."""

    url: str = DEFAULT_STATE_URL
    #: the key that seals spooled payloads and HIS rows (none: stored plain); see
    #: adapter.state.sealing and `yibao-adapter db keygen`
    key_file: str | None = None
    #: earlier keys, kept to read what they sealed until `yibao-adapter db rekey` has re-sealed it
    old_key_files: list[str] = Field(default_factory=list)


class ScheduleConfig(_Model):
    """How often the daemon runs a cycle and how it backs off."""

    interval_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 20.0
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    retry_base_seconds: Annotated[float, Field(gt=0)] = 30.0
    retry_cap_seconds: Annotated[float, Field(gt=0)] = 3600.0
    in_process_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    in_process_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 1.0
    #: messages on their way to the centre at once, each of another visit (a visit's own
    #: messages always go one after another, in order); 1: one at a time
    in_flight: Annotated[int, Field(ge=1, le=16)] = 1

    @model_validator(mode="after")
    def _cap_above_base(self) -> ScheduleConfig:
        if self.retry_cap_seconds < self.retry_base_seconds:
            raise ValueError("retry_cap_seconds must not be below retry_base_seconds")
        return self


class LoggingConfig(_Model):
    """Where logs go and how verbose they are."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: str | None = None


class ProgressConfig(_Model):
    """Progress of long work (a backfill, a catalogue or mapping import, a reconciliation): bars
    on a terminal, else a log line and the row `status` reads, every ``every_seconds``."""

    #: also how long work runs before it shows any (0: at every batch)
    every_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    #: when an extract proves long, count the HIS rows past its watermark once (one COUNT over
    #: its query) for a total and an end estimate; false: what is done and the rate only
    count_his_backlog: bool = True


class CatalogConfig(_Model):
    """Which national catalogues are downloaded, how often, and how much change is accepted."""

    #: catalogue kinds (infno) the daemon keeps up to date; empty: none on a schedule
    kinds: list[str] = Field(default_factory=list)
    interval_hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24.0
    #: a download retiring more than this share of the active codes needs --accept-mass-change
    max_retire_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    #: refuse GB18030/GBK catalogue files instead of converting them
    refuse_gb18030: bool = False
    #: caps on a downloaded archive (zip bombs)
    max_unpacked_mb: Annotated[int, Field(gt=0)] = 4096
    max_compression_ratio: Annotated[float, Field(gt=1)] = 200.0
    #: page_size of the paged queries (1312, 1316-1319)
    page_size: Annotated[int, Field(ge=1, le=1000)] = 500


class ReconcileConfig(_Model):
    """When the daemon reconciles with the centre on its own."""

    #: local time (HH:MM) after which yesterday is reconciled; empty: no daily reconciliation
    daily_at: str = ""
    #: on the 1st (after daily_at), reconcile the month before
    month_end: bool = True

    @field_validator("daily_at")
    @classmethod
    def _time(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("daily_at must be HH:MM (24-hour), e.g. 02:30")
        return value


#: an amount of the budget, in yuan: not negative, at most two decimals
_Amount = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
#: a 险种类型 (insutype) code, 310, 390...
_Insutype = Annotated[str, Field(pattern=r"^\d{3,6}$")]


class BudgetConfig(_Model):
    """The hospital's global budget (总额预算) of fund payments, per insurance type, as the
    agency set it for the year; ``report budget`` sets the settlements against it."""

    #: insutype -> the budget of every month
    monthly: dict[_Insutype, _Amount] = Field(default_factory=dict)
    #: "YYYY-MM" -> insutype -> the budget of that month, where it differs from ``monthly``
    months: dict[str, dict[_Insutype, _Amount]] = Field(default_factory=dict)

    @field_validator("months")
    @classmethod
    def _month_keys(cls, value: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        for key in value:
            if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", key):
                raise ValueError(f"month {key!r} must be written YYYY-MM, e.g. [budget.months.\"2026-02\"]")
        return value

    def for_month(self, year: int, month: int) -> dict[str, Decimal]:
        """insutype -> the budget of that month (``monthly``, with the month's own amounts over it)."""
        return {**self.monthly, **self.months.get(f"{year:04d}-{month:02d}", {})}


_LOOPBACK_HOSTS = ("localhost", "::1")


class MonitorConfig(_Model):
    """The daemon's HTTP endpoint: /metrics, /healthz, /readyz and the status page. It shows
    queue contents (park reasons quote the centre, which may name patients), so it listens on
    loopback unless a token guards it."""

    #: host:port ("[::1]:9464" for IPv6); empty: no endpoint. Any address but loopback needs token.
    listen: str = "127.0.0.1:9464"
    #: bearer token every request must send (``Authorization: Bearer …``); required off loopback
    token: SecretRef | None = None
    #: a queue's head tried and still unsent this long after it was built is stuck (readyz, alert)
    stuck_minutes: Annotated[float, Field(gt=0)] = 60.0
    #: the status page reloads itself this often
    refresh_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    #: local time (HH:MM) after which the first cycle writes the daily health summary of the
    #: 24 hours before it (adapter.monitor.daily)
    daily_summary_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "00:00"

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            split_listen(value)
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> MonitorConfig:
        if self.listen and self.token is None and not is_loopback(split_listen(self.listen)[0]):
            raise ValueError(
                f"listen = {self.listen!r} is not a loopback address: give token = {{ env = \"VAR\" }} "
                "(sent as a bearer token), or listen on 127.0.0.1"
            )
        return self


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port); ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"write host:port, e.g. 127.0.0.1:9464 (got {value!r})")
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or re.fullmatch(r"127(\.\d{1,3}){3}", host) is not None


class WebhookConfig(_Model):
    """Alerts POSTed as JSON to a URL (a chat bot, a ticket system, an SMS gateway)."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    #: sent as ``Authorization: Bearer …`` when given
    token: SecretRef | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


class SmtpConfig(_Model):
    """Alerts mailed through an SMTP relay."""

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    #: STARTTLS before anything is sent (and before any login)
    starttls: bool = False
    username: str | None = None
    password: SecretRef | None = None
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1)]
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _login_whole(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password = { env = \"VAR\" }, or neither")
        return self


class AlertsConfig(_Model):
    """When the daemon raises an alert (one when a condition starts, one when it clears) and
    where it goes besides the log."""

    #: where open alerts are kept across restarts (default: $STATE_DIRECTORY/alerts.json, or
    #: beside a SQLite state database; with neither, in memory only)
    state_file: str | None = None
    #: the oldest unsent record of a transaction has waited this share of the region's deadline
    oldest_unsent_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    #: parked records grew within this window (and it clears once they have not for as long)
    parked_window_minutes: Annotated[float, Field(gt=0)] = 60.0
    #: this many requests in a row found no centre (connection, timeout, HTTP 5xx)
    centre_failures: Annotated[int, Field(ge=1, le=100)] = 3
    #: the state database's file system has less than this share free (SQLite only)
    disk_free_percent: Annotated[float, Field(gt=0, lt=100)] = 10.0
    webhook: WebhookConfig | None = None
    smtp: SmtpConfig | None = None


class Settings(_Model):
    """The whole configuration file."""

    his: HisConfig
    centre: CentreConfig
    state: StateConfig = StateConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    logging: LoggingConfig = LoggingConfig()
    progress: ProgressConfig = ProgressConfig()
    catalog: CatalogConfig = CatalogConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    monitor: MonitorConfig = MonitorConfig()
    alerts: AlertsConfig = AlertsConfig()
    budget: BudgetConfig = BudgetConfig()
    #: policy-rule settings by rule id (parameters, enabled, severity), over the region's rule set
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)

    def source_for(self, infno: str) -> SourceConfig | None:
        """The HIS query of a transaction, if the configuration gives one."""
        if infno == "2301" and self.his.fee_query is not None:
            if "2301" in self.sources:
                raise ConfigError('give the 2301 query once: [his] fee_query or [sources."2301"], not both')
            return SourceConfig(query=self.his.fee_query, watermark_column=self.his.watermark_column)
        return self.sources.get(infno)

    def inline_secrets(self) -> list[str]:
        """The keys whose values are secrets written in the file itself: a database URL with a
        password (``user:pw@host``, ``?password=``, an ODBC string's ``PWD=``)."""
        return [key for key, url in (("[his] url", self.his.url), ("[state] url", self.state.url))
                if _url_has_password(url)]

    def require_settlement_query(self) -> str:
        if not self.his.settlement_query:
            raise ConfigError("[his] settlement_query: give the HIS query of settlements (see "
                              "config/adapter.example.toml)")
        return self.his.settlement_query


def _url_has_password(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # not a URL: refused when it is opened
    if parsed.password:
        return True
    for name, value in parsed.query.items():
        values = [value] if isinstance(value, str) else list(value)
        if name.lower() in ("password", "passwd", "pwd") or any(
                re.search(r"(^|;)\s*pwd\s*=", item, re.I) for item in values):
            return True
    return False


def load_settings(path: Path | str) -> Settings:
    """Read and validate a configuration file; :class:`ConfigError` lists every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: configuration must be UTF-8 ({exc.reason})") from exc
    settings = parse_settings(text, source=str(path))
    secrets = settings.inline_secrets()
    if secrets:
        refuse_shared(path, f"the configuration holds a password ({', '.join(secrets)}) and")
    return resolve_paths(settings, Path(os.path.abspath(path)).parent)


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """``settings`` with every relative path made absolute against ``base`` (the configuration
    file's folder): SQLite files of ``[his] url`` and ``[state] url``, key files, the log file,
    the alert state file, the CA bundle and ``{ file = … }`` secrets. Against the working
    directory, ``status`` run from another folder would open (and create) another, empty state
    database there; systemd starts the daemon in a folder of its own choosing."""

    def path(value: str) -> str:
        return value if Path(value).is_absolute() else os.path.normpath(base / value)

    def maybe(value: str | None) -> str | None:
        return None if value is None else path(value)

    def ref(value: SecretRef | None) -> SecretRef | None:
        if value is None or value.file is None:
            return value
        return value.model_copy(update={"file": path(value.file)})

    state, alerts, centre = settings.state, settings.alerts, settings.centre
    webhook = alerts.webhook and alerts.webhook.model_copy(update={"token": ref(alerts.webhook.token)})
    smtp = alerts.smtp and alerts.smtp.model_copy(update={"password": ref(alerts.smtp.password)})
    return settings.model_copy(update={
        "his": settings.his.model_copy(update={"url": sqlite_url_against(settings.his.url, base)}),
        "state": state.model_copy(update={
            "url": sqlite_url_against(state.url, base), "key_file": maybe(state.key_file),
            "old_key_files": [path(name) for name in state.old_key_files]}),
        "centre": centre.model_copy(update={
            "ca_bundle": maybe(centre.ca_bundle),
            "credentials": {name: ref(item) for name, item in centre.credentials.items()}}),
        "logging": settings.logging.model_copy(update={"file": maybe(settings.logging.file)}),
        "monitor": settings.monitor.model_copy(update={"token": ref(settings.monitor.token)}),
        "alerts": alerts.model_copy(update={"state_file": maybe(alerts.state_file), "webhook": webhook,
                                            "smtp": smtp}),
    })


_SQLITE_URL = re.compile(r"^(?P<head>sqlite(\+\w+)?:///)(?P<database>[^?]*)(?P<query>\?.*)?$", re.S)


def sqlite_url_against(url: str, base: Path) -> str:
    """A SQLite URL naming a relative file (``sqlite:///spool/state.db``) as one naming it under
    ``base`` (``sqlite:////etc/yibao-adapter/spool/state.db``), written as the user wrote it
    otherwise; absolute files (``sqlite:////abs``), memory databases (``sqlite://``,
    ``:memory:``) and every other database URL unchanged. A URI filename (``file:x.db`` with
    ``?uri=true``) is made absolute the same way."""
    found = _SQLITE_URL.match(url)
    if found is None:
        return url
    database = found["database"]
    scheme = "file:" if database.startswith("file:") else ""
    name = database[len(scheme):]
    if not name or name.startswith("/") or name.startswith(":memory:") or (
            scheme and "mode=memory" in (found["query"] or "")):
        return url
    # the URL is percent-decoded when it is opened: the folder's own % ? # must stay literal
    folder = str(base).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return f"{found['head']}{scheme}{os.path.normpath(f'{folder}/{name}')}{found['query'] or ''}"


def parse_settings(text: str, source: str = "<config>") -> Settings:
    """Validate TOML text; the error names each bad key with its table and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, text, source) for error in exc.errors()]
        raise ConfigError(problems=problems) from exc


def _describe(error: Any, text: str, source: str) -> str:
    loc = [str(part) for part in error["loc"]]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    where = _format_loc(loc)
    line = _find_line(text, loc)
    position = f"{source}:{line}" if line else source
    value = error.get("input")
    shown = "" if error["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else (
        f" (got {value!r})"
    )
    return f"{position}: {where}: {message}{shown}"


def _format_loc(loc: list[str]) -> str:
    if not loc:
        return "(top level)"
    if len(loc) == 1:
        return f"[{loc[0]}]"
    return f"[{loc[0]}] {'.'.join(loc[1:])}"


def _find_line(text: str, loc: list[str]) -> int | None:
    """Best effort: the line where the key (or its table) is written."""
    if not loc:
        return None
    lines = text.splitlines()
    table_re = re.compile(r"^\s*\[\s*" + re.escape(loc[0]) + r"(\.[^\]]*)?\s*\]")
    start = next((i for i, line in enumerate(lines) if table_re.match(line)), None)
    if start is None:
        return None
    if len(loc) == 1:
        return start + 1
    key_re = re.compile(r"^\s*" + re.escape(loc[1]) + r"\s*=")
    for i in range(start + 1, len(lines)):
        if re.match(r"^\s*\[[^\]]+\]\s*$", lines[i]) and not lines[i].strip().startswith(
            f"[{loc[0]}."
        ):
            break
        if key_re.match(lines[i]):
            return i + 1
    return start + 1
