"""Who may use the web endpoints: ``--web.config.file``, trusted proxies, lifecycle.

The web config file is exporter-toolkit's format (TLS, basic auth with bcrypt
hashes, response headers), so one file can serve every exporter on a host.
It is read at start (invalid: exit 78) and again on each reload.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import os
import re
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import bcrypt
import structlog
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from outagewatch.config import ConfigError, Model, _UniqueKeyLoader, format_errors

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BCRYPT_HASH = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit allows only these response headers in http_server_config.
_ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
# Python's ssl always verifies a client certificate it asks for, so the toolkit's two
# "any certificate, unverified" modes have no equivalent here.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class TLSServerConfig(Model):
    """exporter-toolkit's ``tls_server_config``."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: list[str] = Field(default_factory=list)
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"

    @field_validator("client_auth_type")
    @classmethod
    def _known_client_auth(cls, value: str) -> str:
        if value not in _CLIENT_AUTH:
            unsupported = ("RequestClientCert", "RequireAnyClientCert")
            if value in unsupported:
                raise ValueError(
                    f"{value} (an unverified client certificate) is not supported; "
                    "use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                )
            raise ValueError(f"unknown client_auth_type; one of: {', '.join(_CLIENT_AUTH)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError("client_ca_file needs a verifying client_auth_type")
        if self.client_allowed_sans and not verifies:
            raise ValueError("client_allowed_sans needs a verifying client_auth_type")
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self

    def context(self) -> ssl.SSLContext:
        """The server's SSLContext; OSError/ssl.SSLError when a file is unusable."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _TLS_VERSIONS[self.min_version]
        ctx.maximum_version = _TLS_VERSIONS[self.max_version]
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            ctx.load_verify_locations(cafile=self.client_ca_file)
        return ctx


class HTTPServerConfig(Model):
    """exporter-toolkit's ``http_server_config``; ``http2`` is accepted and ignored."""

    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name not in _ALLOWED_HEADERS:
                raise ValueError(f"header {name!r} is not allowed; one of: {_ALLOWED_HEADERS}")
        return headers


def _bcrypt_hash(value: str) -> str:
    if not _BCRYPT_HASH.match(value):
        raise ValueError("not a bcrypt hash (want $2y$10$... as from htpasswd -nB)")
    return value


class WebConfig(Model):
    """The whole ``--web.config.file``."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, Annotated[str, AfterValidator(_bcrypt_hash)]] = Field(
        default_factory=dict
    )

    @field_validator("basic_auth_users")
    @classmethod
    def _user_names(cls, users: dict[str, str]) -> dict[str, str]:
        for user in users:
            if ":" in user or not user:
                raise ValueError(f"user name {user!r}: must be non-empty and hold no ':'")
        return users


def load_web_config(path: str | Path) -> tuple[WebConfig, ssl.SSLContext | None]:
    """Read and validate the web config file, TLS files included; raises ConfigError."""
    source = str(path)
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"invalid YAML: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping"])
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, data)) from None
    tls = config.tls_server_config
    if tls is None:
        return config, None
    unreadable = []
    for key in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, key)
        if path is not None and not os.access(path, os.R_OK):
            unreadable.append(f"tls_server_config -> {key}: cannot read {path}")
    if unreadable:
        raise ConfigError(source, unreadable)
    try:
        return config, tls.context()
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        message = f"tls_server_config: cannot load the TLS files: {reason}"
        raise ConfigError(source, [message]) from None


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes.

    bcrypt is slow on purpose, so checks run off the event loop, one or two at a time,
    and a right password is remembered (by a digest) so a scraper does not pay every time.
    """

    def __init__(self, users: dict[str, str], remembered: int = 256) -> None:
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._remembered = remembered
        self._checks = asyncio.Semaphore(2)
        # A hash to compare against for an unknown user, so timing does not tell names.
        self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(rounds=10)) if users else b""

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    async def allows(self, header: str | None) -> bool:
        if header is None:
            return False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user.decode("utf-8", "replace"))
        key = hashlib.sha256(user + b"\0" + password + b"\0" + (hashed or b"")).digest()
        if hashed is not None and key in self._ok:
            self._ok.move_to_end(key)
            return True
        if len(password) > 72:  # bcrypt's limit; bcrypt >= 5 raises rather than truncate
            return False
        async with self._checks:
            right = await asyncio.to_thread(bcrypt.checkpw, password, hashed or self._decoy)
        if right and hashed is not None:
            self._ok[key] = None
            while len(self._ok) > self._remembered:
                self._ok.popitem(last=False)
            return True
        return False


def parse_networks(text: str) -> list[Network]:
    """``CIDR,CIDR,...`` (a bare address is a /32 or /128); ValueError names the bad one."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"invalid CIDR {item!r}") from None
    return networks


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client behind trusted proxies: the rightmost ``X-Forwarded-For`` hop not trusted.

    Only a trusted peer's header is believed; each hop can append but not rewrite what
    the proxy nearer to us wrote, so hops are read right to left.
    """
    if peer is None:
        return "unknown"
    if not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return peer  # garbage from beyond the proxies: do not make it a bucket key
    return hops[0] if hops else peer


@dataclass(frozen=True)
class ExternalURL:
    """``--web.external-url`` and ``--web.route-prefix``, Prometheus' semantics."""

    url: str
    prefix: str  # where routes are mounted: "" for the root, else "/path", no trailing "/"

    @property
    def links(self) -> str:
        """What links start with: the external URL's path (a proxy may strip it)."""
        return urlsplit(self.url).path.rstrip("/")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}".lower()


def external_url(url: str | None, route_prefix: str | None, listen_port: int) -> ExternalURL:
    """Default URL ``http://<hostname>:<port>/``; the prefix defaults to the URL's path."""
    import socket

    if not url:
        url = f"http://{socket.gethostname()}:{listen_port}/"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--web.external-url {url!r}: want http(s)://host[:port][/path]")
    path = route_prefix if route_prefix is not None else parts.path
    prefix = "/" + path.strip("/") if path.strip("/") else ""
    return ExternalURL(url.rstrip("/"), prefix)


# Routes that carry their own authentication (report bearer tokens, or a service's
# `reports: public`): basic auth would collide with the bearer header and lock out
# the public, so the web config's users do not guard them.
# Decided by the route the request matched, not by its path text, so no spelling of
# a path can reach another route unguarded.
def is_report_intake(request: web.Request, prefix: str) -> bool:
    resource = request.match_info.route.resource
    if resource is None:
        return False
    return resource.canonical in (f"{prefix}/api/v1/reports", f"{prefix}/report/{{service}}")


@dataclass
class WebSecurity:
    """What the middleware checks; replaced whole on reload."""

    config: WebConfig
    auth: BasicAuth
    trusted_proxies: Sequence[Network]
    external: ExternalURL
    lifecycle: bool = False

    def allowed_sans(self) -> list[str]:
        tls = self.config.tls_server_config
        return tls.client_allowed_sans if tls is not None else []


def _sans(peercert: Any) -> set[str]:
    return {value for kind, value in (peercert or {}).get("subjectAltName", ()) if kind}


def security_middleware(current: Callable[[], WebSecurity]) -> Middleware:
    """Client address, client certificate SANs, basic auth and headers for every route."""
    log = structlog.get_logger("outagewatch.web")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        sec = current()
        headers = sec.config.http_server_config.headers
        try:
            response = await guarded(request, handler, sec)
        except web.HTTPException as exc:  # refusals and errors carry the headers too
            for name, value in headers.items():
                exc.headers.setdefault(name, value)
            raise
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    async def guarded(
        request: web.Request, handler: Handler, sec: WebSecurity
    ) -> web.StreamResponse:
        client = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), sec.trusted_proxies
        )
        if client != request.remote:
            request = request.clone(remote=client)
        sans = set(sec.allowed_sans())
        if sans and not sans & _sans(
            request.transport and request.transport.get_extra_info("peercert")
        ):
            log.warning("client_certificate_refused", client=client)
            raise web.HTTPForbidden(text="Client certificate not allowed.\n")
        needs_auth = sec.auth.enabled and not is_report_intake(request, sec.external.prefix)
        credentials = request.headers.get("Authorization")
        if needs_auth and not await sec.auth.allows(credentials):
            # Wrong passwords are few (bcrypt paces them); missing ones only at debug.
            level = log.info if credentials else log.debug
            level("basic_auth_refused", client=client, path=request.path[:200])
            raise web.HTTPUnauthorized(
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="outagewatch"'},
            )
        return await handler(request)

    return middleware


def lifecycle_refusal(request: web.Request, sec: WebSecurity) -> str | None:
    """Why a lifecycle request is refused, or None to go ahead.

    A browser on another site can POST to us without a preflight (a "simple"
    request): refuse anything a browser marks cross-site, and any Origin that is
    neither the external URL's nor the one the request was sent to.
    """
    if not sec.lifecycle:
        return "Lifecycle API is not enabled."
    if request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
        return "Cross-site requests to the lifecycle API are refused."
    origin = request.headers.get("Origin")
    if origin is not None:
        own = {sec.external.origin, f"{request.scheme}://{request.host}".lower()}
        if origin.lower() not in own:
            return "Cross-origin requests to the lifecycle API are refused."
    return None
