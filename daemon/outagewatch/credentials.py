"""Secrets from files or systemd credentials ($CREDENTIALS_DIRECTORY), never the environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class CredentialError(Exception):
    """A configured secret cannot be read; the message names its config key."""


def secret_path(
    key: str, file: Path | None, credential: str | None, environ: Mapping[str, str]
) -> Path | None:
    """Where a secret lives: a configured file, or a credential systemd passed in."""
    if file is not None:
        return file
    if credential is None:
        return None
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise CredentialError(f"{key}: credential {credential!r} needs $CREDENTIALS_DIRECTORY")
    return Path(directory) / credential


def read_secret(key: str, path: Path) -> bytes:
    """A secret file's bytes without surrounding whitespace."""
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise CredentialError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise CredentialError(f"{key}: {path} is empty")
    return data


def read_tokens(key: str, path: Path) -> list[str]:
    """Bearer tokens, one per line; blank lines and ``#`` comments are skipped."""
    text = read_secret(key, path).decode("utf-8", errors="replace")
    tokens = [line.strip() for line in text.splitlines()]
    return [token for token in tokens if token and not token.startswith("#")]
