"""Files for the adapter's user alone: the SQLite state database holds psn_no, names and
diagnoses, the key files unseal them, the configuration may hold a database password.

The state file is created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
database file's mode), in folders created 0700; a file found readable by others is tightened
with a warning, since it may already have been copied. A key or configuration file readable by
group or others is refused instead: the adapter cannot know who read it, so a person must
decide (and probably replace the secret). Folders that already exist are left as they are:
the database may live in a shared one. None of this applies where there are no POSIX modes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from adapter.errors import SecurityError

logger = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
#: the files SQLite keeps beside a database (write-ahead log, its index, rollback journal)
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
#: the mode bits of group and others
_SHARED = 0o077


def _posix() -> bool:
    return os.name == "posix"


def shared_bits(path: Path) -> int:
    """The permission bits ``path`` gives group and others (0: private)."""
    return stat.S_IMODE(path.stat().st_mode) & _SHARED if _posix() else 0


def prepare_sqlite_file(path: Path) -> None:
    """Make sure the state database and its companions are private before SQLite opens them."""
    _make_private_folders(path.parent)
    if _posix():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        except FileExistsError:
            pass  # an empty file is an empty SQLite database; an existing one is checked below
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIDECARS)):
        if candidate.exists():
            tighten(candidate)


def tighten(path: Path) -> None:
    """Take group's and others' permissions off a file that holds patients' data."""
    loose = shared_bits(path)
    if not loose:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    try:
        os.chmod(path, mode & ~_SHARED)
    except OSError as exc:
        logger.warning("%s holds patients' data and can be read by group or others (mode %04o), and cannot be "
                       "tightened: %s; chmod 600 %s", path, mode, exc.strerror, path,
                       extra={"action": "state_file_permissions"})
        return
    logger.warning("%s holds patients' data and could be read by group or others (mode %04o); tightened to %04o",
                   path, mode, mode & ~_SHARED, extra={"action": "state_file_permissions"})


def refuse_shared(path: Path, what: str) -> None:
    """Raise :class:`SecurityError` if group or others have any permission on ``path``."""
    try:
        loose = shared_bits(path)
    except OSError as exc:
        raise SecurityError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if loose:
        mode = stat.S_IMODE(path.stat().st_mode)
        raise SecurityError(f"{path}: {what} can be read or changed by group or others (mode {mode:04o}); "
                            f"chmod 600 {path}")


def _make_private_folders(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            pass
