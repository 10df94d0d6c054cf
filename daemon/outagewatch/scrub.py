"""Secrets never leave: every configured secret is cut out of logs and web answers.

The daemon builds one ``Scrubber`` at start from the config's secrets (API keys,
report tokens, the reporter hash key, credentials in probe headers and URLs) and
hands it to the log set-up and the web app; a reload gives it the new config's
secrets. A provider or proxy that echoes a key (in an error code, a request id, a
Content-Type) then shows ``<redacted>`` wherever the text goes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from aiohttp import web

from outagewatch.config_types import ChatProbeBase, Config, HttpProbe, StatusPageBase
from outagewatch.credentials import CredentialError, read_secret, read_tokens, secret_path

REDACTED = "<redacted>"
# Shorter secrets are not scrubbed: cutting every "abc" out of the logs would hide
# more than it protects. Keys and tokens are far longer.
MIN_SECRET_CHARS = 6
# A run of this many characters of a secret is cut too: a provider that echoes a
# key truncated (a Content-Type cut at 60 characters) leaks a prefix otherwise.
WINDOW = 12
# Such a run holds a whole GRAM-character piece starting at a multiple of GRAM, so
# only every GRAM-th position of a text is looked up (GRAM <= WINDOW / 2).
GRAM = 6
# Header names whose values are credentials.
_SECRET_HEADERS = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password", re.I)


def _variants(secret: str) -> set[str]:
    """The secret as it may appear once escaped by JSON, repr, logfmt or a URL."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\").replace('"', '\\"'),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


class Scrubber:
    """Replaces every known secret in text with ``<redacted>``.

    ``replace`` swaps the whole set at once (a reload); ``scrub`` is safe to call
    from any thread (it reads one attribute).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self._long: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())
        self.replace(secrets)

    def replace(self, secrets: Iterable[str]) -> None:
        """Scrub these secrets from now on (the previous set is forgotten)."""
        variants: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                variants |= _variants(secret)
        # Longest first, so a secret containing another is cut whole.
        ordered = sorted(variants, key=lambda v: (-len(v), v))
        long = tuple(v for v in ordered if len(v) >= WINDOW)
        windows = frozenset(v[i : i + GRAM] for v in long for i in range(len(v) - GRAM + 1))
        # Both attributes are whole new objects: a reader sees the old set or the new.
        self._long = (long, windows)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def scrub(self, text: str) -> str:
        """``text`` with every secret (also inside longer words) replaced, and any run
        of ``WINDOW`` or more characters of one (a truncated or partial echo)."""
        pattern = self._pattern
        if pattern is None:
            return text
        text = pattern.sub(REDACTED, text)
        long, grams = self._long
        if not grams or len(text) < WINDOW:
            return text
        spans: list[tuple[int, int]] = []
        length = len(text)
        for p in range(0, length - GRAM + 1, GRAM):
            if (spans and p < spans[-1][1]) or text[p : p + GRAM] not in grams:
                continue
            start, end = p, p + GRAM
            while end < length and any(text[start : end + 1] in v for v in long):
                end += 1
            while start > 0 and any(text[start - 1 : end] in v for v in long):
                start -= 1
            if end - start >= WINDOW:
                spans.append((start, end))
        if not spans:
            return text
        pieces: list[str] = []
        last = 0
        for start, end in spans:
            pieces.append(text[last : max(start, last)])
            pieces.append(REDACTED)
            last = max(last, end)
        pieces.append(text[last:])
        return "".join(pieces)

    def scrub_value(self, value: Any) -> Any:
        """A copy of ``value`` with secrets scrubbed from strings at any depth.

        Other objects whose text holds a secret (exceptions, URLs) become scrubbed text.
        """
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, bytes):
            text = value.decode("utf-8", errors="replace")
            scrubbed = self.scrub(text)
            return scrubbed if scrubbed != text else value
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, Mapping):
            return {self.scrub_value(k): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(v) for v in value]
        text = str(value)
        scrubbed = self.scrub(text)
        return scrubbed if scrubbed != text else value

    # -- structlog -------------------------------------------------------

    def scrub_event(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: scrubs every value of the event (after exc_info is text)."""
        if self._pattern is None:
            return event_dict
        for key, value in list(event_dict.items()):
            if key.startswith("_") or key == "exc_info":
                continue  # structlog's bookkeeping; exc_info is text by now (format_exc_info)
            event_dict[key] = self.scrub_value(value)
        return event_dict

    def scrub_rendered(self, _logger: Any, _method: str, rendered: Any) -> Any:
        """structlog processor after the renderer: the final line, as a last guard."""
        if isinstance(rendered, str):
            return self.scrub(rendered)
        if isinstance(rendered, bytes):
            return self.scrub(rendered.decode("utf-8", errors="replace")).encode()
        return rendered

    # -- aiohttp ---------------------------------------------------------

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """aiohttp middleware: scrubs text bodies of answers and of HTTP errors."""

        @web.middleware
        async def scrub_answers(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if self._pattern is not None and exc.text:
                    exc.text = self.scrub(exc.text)
                raise
            # /metrics carries only configured names as labels, never error text; it is
            # also the one large, frequent answer.
            if self._pattern is None or request.path == "/metrics":
                return response
            if isinstance(response, web.Response) and isinstance(response.body, bytes):
                charset = response.charset or "utf-8"
                text = response.body.decode(charset, errors="replace")
                scrubbed = self.scrub(text)
                if scrubbed != text:
                    response.body = scrubbed.encode(charset, errors="replace")
            return response

        return scrub_answers


def _header_secrets(name: str, value: str) -> list[str]:
    if not _SECRET_HEADERS.search(name):
        return []
    found = [value]
    scheme, _, credential = value.partition(" ")
    if credential:
        found.append(credential.strip())
        if scheme.lower() == "basic":
            try:
                user_pass = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                pass
            else:
                found.append(user_pass)
                found.append(user_pass.partition(":")[2])
    return found


def _url_secret(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


def _file_text(path: Path) -> str | None:
    try:
        text = path.read_bytes().strip().decode("utf-8", errors="replace")
    except OSError:
        return None  # the probe reports the unreadable key; nothing to scrub
    return text or None


def config_secrets(
    config: Config, environ: Mapping[str, str], reporter_key: bytes | None = None
) -> list[str]:
    """Every secret the daemon knows under ``config``: keys, tokens, header and URL
    credentials, and the reporter hash key (as text and hex)."""
    found: list[str] = []
    for service in config.services.values():
        for probe in service.probes.values():
            if isinstance(probe, HttpProbe):
                for name, value in probe.headers.items():
                    found.extend(_header_secrets(name, value))
                found.extend(_url_secret(probe.url))
            elif isinstance(probe, ChatProbeBase):
                found.extend(_url_secret(probe.base_url))
                path: Path | None = probe.api_key_file
                if path is None and probe.api_key_credential is not None:
                    directory = environ.get("CREDENTIALS_DIRECTORY")
                    path = Path(directory) / probe.api_key_credential if directory else None
                key = _file_text(path) if path is not None else None
                if key is not None:
                    found.append(key)
        for page in service.status_pages.values():
            if isinstance(page, StatusPageBase):
                found.extend(_url_secret(page.url))
    reports = config.reports
    try:
        tokens_path = secret_path(
            "reports -> tokens_file", reports.tokens_file, reports.tokens_credential, environ
        )
        if tokens_path is not None:
            found.extend(read_tokens("reports -> tokens_file", tokens_path))
        key_path = secret_path(
            "reports -> hash_secret_file",
            reports.hash_secret_file,
            reports.hash_secret_credential,
            environ,
        )
        if key_path is not None:
            found.append(
                read_secret("reports -> hash_secret_file", key_path).decode(errors="replace")
            )
    except CredentialError:
        pass  # start-up and reload refuse such a config before it is used
    if reporter_key is not None:
        found.append(reporter_key.hex())
        found.append(reporter_key.decode("utf-8", errors="replace"))
    return [s for s in found if s]
