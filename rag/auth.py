"""API keys with a read or a write role: who may ask, and who may also change the corpus.

A key is an entry ``name:role:secret``.  The secret is what a client sends
(``Authorization: Bearer <secret>``, the header every OpenAI client sends);
the name identifies the key in the browser's sign-in form (name as the user
name, secret as the password) and in the server log, so a leaked or retired
key can be told apart from the others.  ``read`` may chat and search;
``write`` may also add and delete articles.

Keys come from ``Settings.api_keys`` (``RAG_API_KEYS``, entries separated by
commas) and ``Settings.api_keys_file`` (one entry per line, ``#`` comments),
merged.  No keys at all means no sign-in, which ``rag serve`` only allows on
loopback unless told ``--no-auth``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .errors import UserError

READ = "read"
WRITE = "write"
ROLES = (READ, WRITE)
MIN_SECRET_LENGTH = 16  # a short secret can be guessed over the network


class KeyConfigError(UserError):
    """The configured keys cannot be used (a malformed entry, a short or repeated secret)."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    secret: str

    @property
    def can_write(self) -> bool:
        return self.role == WRITE

    def __repr__(self) -> str:  # never print a secret
        return f"ApiKey(name={self.name!r}, role={self.role!r})"


@dataclass(frozen=True)
class Keyring:
    """The keys a server accepts; empty means sign-in is off."""

    keys: tuple[ApiKey, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        entries = [(entry, "RAG_API_KEYS") for entry in (settings.api_keys or "").split(",")]
        if settings.api_keys_file:
            entries += [(line, f"{settings.api_keys_file}:{number}")
                        for number, line in enumerate(_read_lines(settings.api_keys_file), start=1)]
        return cls.of(entries)

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str]]) -> Keyring:
        """Keys from ``(entry, where it was given)`` pairs; blank entries and ``#`` comments are skipped."""
        keys: list[ApiKey] = []
        for entry, origin in entries:
            entry = entry.strip()
            if entry and not entry.startswith("#"):
                keys.append(_parse(entry, origin, keys))
        return cls(tuple(keys))

    def __bool__(self) -> bool:
        return bool(self.keys)

    def by_secret(self, secret: str) -> ApiKey | None:
        """The key with this secret, compared in constant time so that timing does not leak a prefix."""
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.secret.encode(), secret.encode()):
                found = key
        return found

    def login(self, name: str, secret: str) -> ApiKey | None:
        """The key a sign-in form's user name and password stand for, when they match."""
        key = self.by_secret(secret)
        return key if key is not None and key.name == name.strip() else None

    def by_name(self, name: str) -> ApiKey | None:
        return next((key for key in self.keys if key.name == name), None)


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyConfigError(f"api_keys_file {path}: cannot be read ({exc})") from exc


def _parse(entry: str, origin: str, earlier: list[ApiKey]) -> ApiKey:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise KeyConfigError(f"{origin}: an API key entry is name:role:secret (role read or write), "
                        f"not {_redacted(entry)!r}")
    name, role, secret = (part.strip() for part in parts)
    if not name or role not in ROLES:
        raise KeyConfigError(f"{origin}: key {name!r} needs a name and a role of read or write, not {role!r}")
    if len(secret) < MIN_SECRET_LENGTH:
        raise KeyConfigError(f"{origin}: the secret of key {name!r} is shorter than {MIN_SECRET_LENGTH} characters; "
                        "make one with: python -c \"import secrets; print(secrets.token_urlsafe(24))\"")
    if any(key.name == name for key in earlier):
        raise KeyConfigError(f"{origin}: key name {name!r} is given twice")
    if any(key.secret == secret for key in earlier):
        raise KeyConfigError(f"{origin}: key {name!r} reuses the secret of another key")
    return ApiKey(name, role, secret)


def _redacted(entry: str) -> str:
    return entry[:4] + "…" if len(entry) > 4 else "…"
