"""Report intake: ``POST /api/v1/reports`` and the ``/report/<service>`` page.

The handlers refuse cross-site browser requests, validate, authenticate and
rate limit, then hand the reports to the pipeline, which stores them and
updates the state. A 202 goes out only after the store committed. Every refusal
names the field at fault and is counted by a reason from ``REJECTION_REASONS``
(never by anything the client sent).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass, field
from html import escape
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from outagewatch.clock import Clock
from outagewatch.config import Config, ServiceConfig
from outagewatch.observations import Report
from outagewatch.report_fields import FIELDS, FieldError, check_fields
from outagewatch.store import Store, StoreError

REJECTION_REASONS = (
    "malformed_json",
    "content_type",
    "too_large",
    "batch_too_large",
    "invalid_body",
    "missing_field",
    "invalid_field",
    "unknown_service",
    "unknown_problem",
    "unauthorized",
    "rate_limited",
    "store_unavailable",
    "cross_site",
    "form_token",
    "aborted",
)
PROBLEM_LABELS = {
    "app": "The app",
    "website": "The website",
    "login": "Logging in",
    "api": "The API",
    "slow": "Slow answers",
    "other": "Something else",
}


class Rejection(Exception):
    """A refused submission: HTTP status, counted reason, the field at fault."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None,
        message: str,
        index: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        assert reason in REJECTION_REASONS
        self.status = status
        self.reason = reason
        self.field = field
        self.message = message
        self.index = index
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="outagewatch reports"'
        return headers

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "field": self.field, "reason": self.reason}
        if self.index is not None:
            body["index"] = self.index
        return body


class RateLimiter:
    """Token buckets per key (service, client address), least recently seen evicted first."""

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, when

    def take(self, key: tuple[str, str], limit: int, period: float) -> float:
        """Take one token: 0 when allowed, else the seconds until one is back."""
        now = self._clock.monotonic()
        rate = limit / period
        tokens, when = self._buckets.pop(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - when) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._buckets[key] = (tokens, now)  # re-inserted: most recently seen last
        while len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        return wait


class ReporterHasher:
    """Keyed hash of reporter ids: the clear id is never stored."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, reporter: str) -> str:
        return hmac.new(self._key, reporter.encode(), hashlib.sha256).hexdigest()[:32]


class FormTokens:
    """Stateless tokens for the report form: HMAC of service and time bucket.

    The page carries one; a form post without a valid, unexpired one is
    refused, so a form on another site cannot post reports. The secret is made
    at start, so a restart invalidates pages open from before (reloading the page fixes it).
    """

    BUCKET_SECONDS = 300

    def __init__(self, secret: bytes, clock: Clock, max_age: float = 3600.0) -> None:
        self._secret = secret
        self._clock = clock
        self._max_buckets = int(max_age // self.BUCKET_SECONDS)

    def _bucket(self) -> int:
        return int(self._clock.time() // self.BUCKET_SECONDS)

    def _mac(self, service: str, bucket: int) -> str:
        message = f"{service}\n{bucket}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def issue(self, service: str) -> str:
        bucket = self._bucket()
        return f"{bucket}.{self._mac(service, bucket)}"

    def problem(self, service: str, token: str | None) -> str | None:
        """Why ``token`` does not allow a post for ``service``, or None when it does."""
        if not token:
            return "the form token is missing: load the report page again"
        stamp, _, mac = token.partition(".")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return "the form token is not valid: load the report page again"
        age = self._bucket() - int(stamp)
        if not hmac.compare_digest(mac.encode(), self._mac(service, int(stamp)).encode()):
            return "the form token is not valid: load the report page again"
        if not 0 <= age <= self._max_buckets:
            return "the form has expired: load the report page again"
        return None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _same_origin(origin: str, host: str) -> bool:
    """Whether an ``Origin`` header names the host the request was sent to."""
    try:
        asked = urlsplit(origin.strip())
        served = urlsplit("//" + host)
        asked_port, served_port = asked.port, served.port
    except ValueError:
        return False
    if asked.scheme not in ("http", "https") or not asked.hostname or not served.hostname:
        return False
    if asked.hostname != served.hostname:
        return False
    if served_port is None:  # a Host without a port: the scheme's default one
        return asked_port is None
    return (asked_port or _default_port(asked.scheme)) == served_port


def refuse_cross_site(request: web.Request) -> None:
    """Rejection(403) for a browser request sent from another site.

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``);
    programs usually send neither, and are judged by their token instead.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        raise Rejection(403, "cross_site", "origin", "requests from another site are refused")
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, request.host):
        raise Rejection(403, "cross_site", "origin", "requests from another origin are refused")


def _token_digest(token: str) -> bytes:
    # Set membership of digests: no timing signal about any token's bytes.
    return hashlib.sha256(token.encode()).digest()


class ReportSink(Protocol):
    """The pipeline's write side for reports (``Pipeline`` is one): the web reads the
    state only through ``views.StatusQuery`` and hands reports in through this."""

    @property
    def store(self) -> Store | None: ...

    async def submit_reports(self, reports: Sequence[Report], window: float) -> list[bool]: ...

    def reject_report(self, reason: str) -> None: ...


@dataclass
class ReportIntake:
    """What the report handlers need: config, pipeline, clock, secrets, limits."""

    pipeline: ReportSink
    config: Callable[[], Config]
    clock: Clock
    hasher: ReporterHasher
    limiter: RateLimiter
    token_digests: frozenset[bytes] = field(default_factory=frozenset)
    # The form tokens' key: made here, at start, unless given.
    form_secret: InitVar[bytes | None] = None
    form_tokens: FormTokens = field(init=False)

    def __post_init__(self, form_secret: bytes | None) -> None:
        self.form_tokens = FormTokens(form_secret or secrets.token_bytes(32), self.clock)

    def unready_reason(self) -> str | None:
        """Why reports cannot be taken now (the store fails to write), or None."""
        store = self.pipeline.store
        if store is None:
            return None
        store.probe_writes()  # while failing: has the disk been freed meanwhile?
        return store.write_problem

    def set_tokens(self, tokens: Sequence[str]) -> None:
        self.token_digests = frozenset(_token_digest(t) for t in tokens)

    def apply(self, tokens: Sequence[str], reporter_key: bytes) -> None:
        """Take a (re)loaded config's report tokens and reporter hash key."""
        self.set_tokens(tokens)
        self.hasher = ReporterHasher(reporter_key)

    def authenticated(self, request: web.Request) -> bool:
        """False without a token; Rejection(401) for a wrong one."""
        header = request.headers.get("Authorization")
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or _token_digest(token.strip()) not in self.token_digests:
            raise Rejection(401, "unauthorized", "authorization", "invalid bearer token")
        return True

    def rate_limit(self, service: str, service_config: ServiceConfig, address: str) -> None:
        limits = service_config.reports
        wait = self.limiter.take((service, address), limits.rate_limit, limits.rate_limit_period)
        if wait > 0:
            raise Rejection(
                429,
                "rate_limited",
                "client_address",
                f"too many reports from this address for {service}",
                retry_after=wait,
            )

    def parse(self, item: Any, index: int | None, config: Config) -> Report:
        """One JSON report into a Report with a hashed reporter; Rejection(422) if invalid."""
        if not isinstance(item, dict):
            raise Rejection(422, "invalid_body", "body", "a report must be a JSON object", index)
        for key in item:
            if key not in FIELDS:
                # The name goes back to the client only (JSON-escaped), never into a label.
                raise Rejection(422, "invalid_field", key[:64], "unknown field", index)
        try:
            fields = check_fields(item, config, reporter_required=True)
        except FieldError as exc:
            raise Rejection(422, exc.reason, exc.field, exc.message, index) from None
        assert fields.reporter is not None
        return Report(
            service=fields.service,
            problem=fields.problem,
            time=self.clock.time(),
            reporter=self.hasher(fields.reporter),
            country=fields.country,
            comment=fields.comment,
        )


INTAKE = web.AppKey("outagewatch_report_intake", ReportIntake)


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise Rejection(413, "too_large", "body", f"body over {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise Rejection(413, "too_large", "body", f"body over {limit} bytes")
            chunks.append(chunk)
    except ConnectionResetError:
        # The client went away mid-body: an everyday event, counted, nothing stored.
        raise Rejection(400, "aborted", "body", "the client aborted the body") from None
    return b"".join(chunks)


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def _submit(intake: ReportIntake, reports: list[Report], config: Config) -> list[bool]:
    try:
        return await intake.pipeline.submit_reports(reports, config.reports.window)
    except StoreError as exc:
        raise Rejection(503, "store_unavailable", None, "the report store is unavailable") from exc


async def post_reports(request: web.Request) -> web.Response:
    """``POST /api/v1/reports``: one JSON report or an array of them."""
    intake = request.app[INTAKE]
    config = intake.config()
    try:
        refuse_cross_site(request)
        if request.content_type != "application/json":
            raise Rejection(415, "content_type", "content-type", "send application/json")
        authenticated = intake.authenticated(request)
        body = await _read_body(request, config.reports.max_body_bytes)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise Rejection(400, "malformed_json", "body", "malformed JSON") from None
        if isinstance(data, list):
            if len(data) > config.reports.max_batch:
                raise Rejection(
                    413,
                    "batch_too_large",
                    "body",
                    f"more than {config.reports.max_batch} reports in one request",
                )
            if not data:
                raise Rejection(422, "invalid_body", "body", "an empty array holds no report")
            reports = [intake.parse(item, i, config) for i, item in enumerate(data)]
        else:
            reports = [intake.parse(data, None, config)]
        if not authenticated:
            for i, report in enumerate(reports):
                if not config.services[report.service].reports.public:
                    raise Rejection(
                        401,
                        "unauthorized",
                        "authorization",
                        f"a bearer token is required for {report.service}",
                        i if isinstance(data, list) else None,
                    )
            address = _address(request)
            for report in reports:
                intake.rate_limit(report.service, config.services[report.service], address)
            # Without a token the client address is the reporter: ids are free to invent.
            reports = [_as_public(intake, r, address, "api") for r in reports]
        verdicts = await _submit(intake, reports, config)
    except Rejection as rejection:
        intake.pipeline.reject_report(rejection.reason)
        return web.json_response(
            rejection.body(), status=rejection.status, headers=rejection.headers()
        )
    accepted = sum(verdicts)
    return web.json_response(
        {
            "accepted": accepted,
            "duplicates": len(verdicts) - accepted,
            "results": ["accepted" if v else "duplicate" for v in verdicts],
        },
        status=202 if accepted else 200,
    )


def _as_public(intake: ReportIntake, report: Report, address: str, channel: str) -> Report:
    return Report(
        service=report.service,
        problem=report.problem,
        time=report.time,
        reporter=intake.hasher("address:" + address),
        country=report.country,
        comment=report.comment,
        channel=channel,
    )


# -- the public page -------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:32rem;color:#1b1b1b}
form{display:grid;gap:.6rem}button{font-size:1.1rem;padding:.7rem;cursor:pointer}
"""


def _page(
    title: str, body: str, status: int, headers: dict[str, str] | None = None
) -> web.Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _public_service(request: web.Request, config: Config) -> tuple[str, ServiceConfig]:
    key = request.match_info["service"]
    service = config.services.get(key)
    if service is None or not service.reports.public:
        raise web.HTTPNotFound(text="No report page for this service.\n")
    return key, service


async def report_page(request: web.Request) -> web.Response:
    """``GET /report/<service>``: one button per problem; a plain form, no JavaScript."""
    intake = request.app[INTAKE]
    config = intake.config()
    key, service = _public_service(request, config)
    token = intake.form_tokens.issue(key)
    buttons = "".join(
        f'<button type=submit name=problem value="{escape(p)}">'
        f"{escape(PROBLEM_LABELS.get(p, p))}</button>"
        for p in config.reports.problems
    )
    return _page(
        f"Is {service.title(key)} down for you?",
        f"<p>Tell us what does not work:</p>"
        # No action: the form posts to the page's own URL, whatever path a proxy serves it at.
        f"<form method=post>"
        f'<input type=hidden name=token value="{escape(token)}">{buttons}</form>',
        200,
    )


async def post_report_page(request: web.Request) -> web.Response:
    """``POST /report/<service>``: the page's form; same limits as the API."""
    intake = request.app[INTAKE]
    config = intake.config()
    key, service = _public_service(request, config)
    title = service.title(key)
    try:
        refuse_cross_site(request)
        if request.content_type != "application/x-www-form-urlencoded":
            raise Rejection(415, "content_type", "content-type", "send the form as it is")
        body = await _read_body(request, config.reports.max_body_bytes)
        form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        refused = intake.form_tokens.problem(key, form.get("token", [None])[0])
        if refused is not None:
            raise Rejection(403, "form_token", "token", refused)
        try:
            fields = check_fields(
                {"service": key, "problem": form.get("problem", [None])[0]},
                config,
                reporter_required=False,
            )
        except FieldError as exc:
            raise Rejection(422, exc.reason, exc.field, exc.message) from None
        address = _address(request)
        intake.rate_limit(key, service, address)
        report = Report(
            service=key,
            problem=fields.problem,
            time=intake.clock.time(),
            reporter=intake.hasher("address:" + address),
            channel="page",
        )
        (counted,) = await _submit(intake, [report], config)
    except Rejection as rejection:
        intake.pipeline.reject_report(rejection.reason)
        back = '<p><a href="">Back</a></p>'  # the page itself, as a GET
        return _page(
            title,
            f"<p>{escape(rejection.message)}.</p>{back}",
            rejection.status,
            rejection.headers(),
        )
    if counted:
        return _page(title, "<p>Thank you: your report counts.</p>", 202)
    return _page(title, "<p>Thank you: we already have a recent report from you.</p>", 200)


def add_report_routes(app: web.Application, intake: ReportIntake, prefix: str = "") -> None:
    """Mount the intake routes on the daemon's app, under the route prefix."""
    app[INTAKE] = intake
    app.router.add_post(f"{prefix}/api/v1/reports", post_reports)
    app.router.add_get(f"{prefix}/report/{{service}}", report_page)
    app.router.add_post(f"{prefix}/report/{{service}}", post_report_page)
