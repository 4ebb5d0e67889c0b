"""Secrets of the configuration: the links' signing keys (``DIGEST_SECRET_KEY``, else one
generated once under the working folder) and a string type that never shows its value.
:mod:`digest.config` reads them; nothing here reads the configuration file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from digest.errors import ConfigError

__all__ = ["Secret", "secret_keys", "stored_key"]


class Secret(str):
    """A string whose repr never shows its value (passwords, keys)."""

    def __repr__(self) -> str:
        return "'***'"


def secret_keys(env: Mapping[str, str], work_dir: Path) -> tuple[str, ...]:
    """The signing keys: DIGEST_SECRET_KEY, else one generated once under the working folder."""
    current = env.get("DIGEST_SECRET_KEY")
    if not current:
        current = stored_key(work_dir / "secret.key")
    old = tuple(k.strip() for k in env.get("DIGEST_OLD_SECRET_KEYS", "").split(",") if k.strip())
    return tuple(Secret(k) for k in (current, *old))


def stored_key(key_file: Path) -> str:
    """Read the generated signing key, creating it (mode 0600) on first use."""
    if key_file.parent.exists() and not key_file.parent.is_dir():
        raise ConfigError(f"The working folder {key_file.parent} is a file, not a folder; set "
                          "digest.work_dir to a folder.")
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            # Written whole under a temporary name, then linked into place: a run starting at
            # the same moment sees either no key or the complete one, and both keep the first.
            tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, key_file)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = key_file.read_text(encoding="ascii").strip()
        if key:
            return key
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII"
        raise ConfigError(f"The signing key file {key_file} cannot be used ({reason}); make "
                          "the working folder (digest.work_dir) writable, fix or delete the "
                          "file, or set DIGEST_SECRET_KEY.") from None
    raise ConfigError(f"The signing key file {key_file} is empty; delete it or set "
                      "DIGEST_SECRET_KEY.")
