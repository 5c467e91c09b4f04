"""Taking secrets and personal data out of text that leaves the process (log lines, exception
text): passwords and tokens, signatures, the password of a database URL, 18-character ID
numbers (身份证号), mobile numbers, and the values of fields that name or identify a patient.

The logs of a hospital's service are read by people who may not see patient data, shipped to
log collectors and pasted into tickets; the centre's answers and SQL errors quote what they
were given. So every log line goes through :func:`redact` (every handler
:func:`adapter.logs.configure_logging` installs is a :class:`RedactingHandler`), at every level,
whatever the call site remembered. Redacting an already redacted text changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

#: the attributes every LogRecord has; the others are the call's extras
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
#: what a removed value is replaced with, by kind
SECRET, ID_NUMBER, PHONE, PERSONAL = "***", "[id]", "[phone]", "[personal]"

#: keys whose value is a secret (``key=value``, ``"key": "value"``, ``key: value`` in a header)
SECRET_KEYS = (
    "password", "passwd", "pwd", "secret", "secret_key", "secretkey", "app_secret", "appsecret",
    "client_secret", "token", "access_token", "refresh_token", "api_key", "apikey", "passphrase",
    "x-tif-signature", "x-ca-signature", "_api_signature", "signature", "sign",
)
#: interface fields that name or identify a person (national tables: psn_name 人员姓名, certno
#: 证件号码, tel 联系电话, addr 地址, coner_* 联系人…)
PERSONAL_KEYS = (
    "psn_name", "patn_name", "coner_name", "certno", "psn_cert_no", "mdtrt_cert_no", "card_sn",
    "tel", "mob", "conn_tel", "coner_tel", "addr", "curr_addr", "resd_addr", "live_addr", "coner_addr",
    "姓名", "身份证号", "证件号码", "联系电话", "手机号",
)

_KEY_CHARS = r"A-Za-z0-9_\-"
_PREFIX = r"(?:[A-Za-z0-9]+[_\-])*"  # YIBAO_TIF_TOKEN=, db-password:
#: a plain English word is a key before "=" or in quotes, but not before a bare ":" in prose
#: ("invalid token: expired"); these words, and every key with _ - or Chinese in it, are
_COLON_WORDS = ("password", "passwd", "secret")


def _keyed(keys: tuple[str, ...]) -> re.Pattern[str]:
    """``key=value``, ``"key": "value"``, ``'key': 'value'``, ``key=value&…``, ``x-key: value``
    (a header), ``姓名：张三``: the value (quoted, or up to a separator) is group ``value``."""

    colon = tuple(key for key in keys if key in _COLON_WORDS or re.search(r"[_\-]|[^\x00-\x7f]", key))
    key = (rf"(?<![{_KEY_CHARS}])(?:(?P<q>[\"']){_PREFIX}(?:{_names(keys)})(?P=q)\s*[:=]"
           rf"|{_PREFIX}(?:{_names(keys)})\s*="
           rf"|{_PREFIX}(?:{_names(colon)})\s*[:：])")
    return re.compile(
        rf"(?P<key>{key}\s*)"
        r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|(?![\[{(])[^\s,;&\"'}\]）)，；]+)",
        re.IGNORECASE,
    )


def _names(keys: tuple[str, ...]) -> str:
    return "|".join(re.escape(key) for key in sorted(keys, key=len, reverse=True))


_SECRET_FIELD = _keyed(SECRET_KEYS)
_PERSONAL_FIELD = _keyed(PERSONAL_KEYS)
#: a dict key (of a log record's extra) naming a secret or personal value
_SECRET_NAME = re.compile(rf"{_PREFIX}(?:{_names((*SECRET_KEYS, 'authorization'))})", re.IGNORECASE)
_PERSONAL_NAME = re.compile(rf"{_PREFIX}(?:{_names(PERSONAL_KEYS)})", re.IGNORECASE)
#: Authorization: Bearer …, Authorization: Basic …, and a bare "Bearer <token>"
_AUTHORIZATION = re.compile(r"(?P<key>\bauthorization[\"']?\s*[:=]\s*[\"']?)(?P<scheme>(?:bearer|basic|token)\s+)?"
                            r"(?P<value>[^\s\"',;]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})")
#: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<key>\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)(?P<value>[^\s@/]+)(?=@)", re.IGNORECASE)
#: a resident ID number: area, birth date (18xx–20xx), sequence, check character (0-9 or X)
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                        r"\d{3}[0-9Xx](?![0-9A-Za-z])")
#: a mainland mobile number, with or without +86
_MOBILE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[\s\-]?)?1[3-9]\d{9}(?!\d)")
#: the parameters SQLAlchemy prints under a failed statement: HIS rows, payloads, names by
#: position that no key gives away
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|\Z)", re.S)


def _replace_value(marker: str) -> Callable[[re.Match[str]], str]:
    def replace(found: re.Match[str]) -> str:
        value = found["value"]
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{found['key']}{quote}{marker}{quote}"
    return replace


def redact(text: str) -> str:
    """``text`` without secrets, ID numbers, mobile numbers or the values of personal fields;
    anything else is left as it was."""
    if not text:
        return text
    text = _SQL_PARAMETERS.sub(f"[parameters: {SECRET}]", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m['key']}{m['scheme'] or ''}{SECRET}", text)
    text = _BEARER.sub(lambda m: f"{m['key']}{SECRET}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['key']}{SECRET}", text)
    text = _SECRET_FIELD.sub(_replace_value(SECRET), text)
    text = _PERSONAL_FIELD.sub(_replace_value(PERSONAL), text)
    text = _ID_NUMBER.sub(ID_NUMBER, text)
    return _MOBILE.sub(PHONE, text)


def redact_value(value: object) -> object:
    """A log record's extra value redacted: text is, containers are walked, the rest is kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def _redact_item(key: object, item: object) -> object:
    if item is None:
        return None
    if _SECRET_NAME.fullmatch(str(key)):
        return SECRET
    if _PERSONAL_NAME.fullmatch(str(key)):
        return PERSONAL
    return redact_value(item)


def redacted_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` with nothing secret left: its message (arguments merged in), its
    extras, the text of its exception (the traceback formatted here and redacted; a
    :class:`logging.Formatter` then uses that text) and its stack. A copy, as other handlers
    (a test's log capture) may still want the record as it was made."""
    copy = logging.makeLogRecord(record.__dict__)
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging would print them raw
        message = f"{record.msg} (its arguments did not fit the message)"
    copy.msg, copy.args = redact(message), None
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            setattr(copy, key, redact_value(value))
    if record.exc_info and record.exc_info[1] is not None:
        copy.exc_text = redact(record.exc_text or logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        copy.stack_info = redact(record.stack_info)
    return copy


class RedactingHandler(logging.Handler):
    """A handler that emits only redacted copies of what it is given (mixed in before a
    concrete handler: ``class H(RedactingHandler, logging.FileHandler)``). Every handler
    :func:`adapter.logs.configure_logging` installs is one, so nothing reaches a log unredacted,
    whatever the call site remembered."""

    def handle(self, record: logging.LogRecord) -> bool:
        return super().handle(redacted_record(record))

