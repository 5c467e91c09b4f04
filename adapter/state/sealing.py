"""Sealing: the spooled payloads and the raw HIS rows (psn_no, names, diagnoses) stored
encrypted, when ``[state] key_file`` names a key.

Each value is sealed on its own with AES-256-GCM (``cryptography``), a fresh 96-bit nonce per
value, and the column it belongs to as associated data (a sealed ``record.raw`` cannot be
passed off as a ``message.payload``). A sealed value is text::

    yb1:<key id>:<base64 of nonce + ciphertext + tag>

The key id (derived from the key, so it needs no bookkeeping) says which key sealed it. Keys
rotate by naming a new ``key_file`` and keeping the previous ones in ``old_key_files``: every
key unseals, only the current one seals, and ``yibao-adapter db rekey`` re-seals the old rows
(:mod:`adapter.state.rekey`). Text without the ``yb1:`` prefix is read as it is, so rows
written before sealing was switched on (or after it was switched off) still read; every
sealed column holds JSON, which never starts that way.

:class:`Sealed` is the column type (a SQLAlchemy TypeDecorator), so no query changes; the keys
belong to an engine (:func:`attach`). A sealed column can be read and written, never compared
in SQL: the same text seals differently every time. Migrations see the stored text (they
reflect the tables); none reads a sealed column, and one that must would unseal it itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from adapter.errors import SecurityError
from adapter.state.private import PRIVATE_FILE, refuse_shared

PREFIX = "yb1:"
KEY_BYTES = 32
_NONCE_BYTES = 12


class KeySettings(Protocol):
    """Where the keys are (``[state]`` of the configuration)."""

    @property
    def key_file(self) -> str | None: ...

    @property
    def old_key_files(self) -> Sequence[str]: ...


def key_id(key: bytes) -> str:
    """A short name for a key, derived from it (never from anything secret it protects)."""
    return hashlib.sha256(b"yibao-adapter key id\x00" + key).hexdigest()[:8]


def sealed_key_id(stored: str | None) -> str | None:
    """The id of the key that sealed a stored value; None for plain text (or NULL)."""
    if stored is None or not stored.startswith(PREFIX):
        return None
    return stored[len(PREFIX):].split(":", 1)[0]


class Keyring:
    """The current key (seals and unseals) and the old ones (unseal only)."""

    def __init__(self, current: bytes | None = None, old: Sequence[bytes] = ()) -> None:
        self._keys: dict[str, AESGCM] = {}
        for key in ([current] if current is not None else []) + list(old):
            if len(key) != KEY_BYTES:
                raise SecurityError(f"a sealing key must be {KEY_BYTES} bytes, got {len(key)}")
            self._keys.setdefault(key_id(key), AESGCM(key))
        self.current_id = key_id(current) if current is not None else None

    @classmethod
    def from_settings(cls, settings: KeySettings) -> Keyring:
        """The keys the configuration names, each file checked first (:func:`read_key_file`)."""
        current = read_key_file(Path(settings.key_file)) if settings.key_file else None
        old = [read_key_file(Path(name)) for name in settings.old_key_files]
        ids = [key_id(key) for key in ([current] if current else []) + old]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise SecurityError(f"[state] key_file and old_key_files name the same key (id {', '.join(duplicates)}) "
                                "more than once")
        return cls(current, old)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    @property
    def seals(self) -> bool:
        """Whether new values are sealed (a current key is set)."""
        return self.current_id is not None

    def seal(self, text: str, column: str) -> str:
        """``text`` sealed with the current key; as it is when there is none."""
        if self.current_id is None:
            return text
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.current_id].encrypt(nonce, text.encode("utf-8"), _context(column))
        return f"{PREFIX}{self.current_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def unseal(self, stored: str, column: str) -> str:
        """The text of a stored value, sealed (by any key of the ring) or plain."""
        kid = sealed_key_id(stored)
        if kid is None:
            return stored
        aead = self._keys.get(kid)
        if aead is None:
            known = ", ".join(self._keys) or "none"
            raise SecurityError(
                f"{column} holds a value sealed with key {kid}, which is not among the keys configured "
                f"([state] key_file and old_key_files: {known}); name the key file that has it"
            )
        try:
            blob = base64.b64decode(stored.split(":", 2)[2], validate=True)
            return aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _context(column)).decode("utf-8")
        except (IndexError, ValueError, binascii.Error, InvalidTag) as exc:
            raise SecurityError(f"{column} holds a sealed value (key {kid}) that does not open: it was "
                                "altered, truncated or copied from another column") from exc


def _context(column: str) -> bytes:
    return f"yibao-adapter:{column}".encode("ascii")


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def write_key_file(path: Path) -> str:
    """Write a fresh key to a new file (0600, never over an existing one); returns its id."""
    key = new_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError as exc:
        raise SecurityError(f"{path} exists; a key file is never overwritten (rows sealed with it would be lost)") \
            from exc
    except OSError as exc:
        raise SecurityError(f"cannot create key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")
    return key_id(key)


def read_key_file(path: Path) -> bytes:
    """A key file: one line, the base64 of 32 random bytes, readable by its owner alone."""
    refuse_shared(path, "the sealing key file")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise SecurityError(f"cannot read sealing key file {path}: {reason}") from exc
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise SecurityError(f"{path}: a sealing key file holds one line of base64 "
                            "(`yibao-adapter db keygen FILE` writes one)") from exc
    if len(key) != KEY_BYTES:
        raise SecurityError(f"{path}: a sealing key is {KEY_BYTES} bytes, this one is {len(key)} "
                            "(`yibao-adapter db keygen FILE` writes one)")
    return key


#: the keyring of each engine, by its dialect (what a column type is handed when it converts)
_RINGS: weakref.WeakKeyDictionary[Dialect, Keyring] = weakref.WeakKeyDictionary()
_NO_KEYS = Keyring()


def attach(engine: Engine, keyring: Keyring) -> None:
    """Seal and unseal the :class:`Sealed` columns of ``engine`` with ``keyring``."""
    _RINGS[engine.dialect] = keyring


def keyring_of(dialect: Dialect) -> Keyring:
    return _RINGS.get(dialect, _NO_KEYS)


class Sealed(TypeDecorator[str]):
    """A TEXT column whose values are sealed with the engine's current key (plain text
    without one); ``column`` ("table.column") is bound into each sealed value."""

    impl = Text
    cache_ok = True

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).seal(str(value), self.column)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).unseal(str(value), self.column)
