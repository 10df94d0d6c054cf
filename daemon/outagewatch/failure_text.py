"""Probe failures in the words an on-call engineer would use: "HTTP 503", not
``http_status``; "TLS certificate expired", not ``tls`` / ``expired``.

The codes stay in metrics, logs and JSON; these words are for the status page
and its events.
"""

from __future__ import annotations

# A probe failure reason (observations.py) in words; ``http_status`` is "HTTP <code>".
FAILURE_TEXT = {
    "timeout": "timed out",
    "http_status": "unexpected HTTP status",
    "dns": "DNS lookup failed",
    "connect": "cannot connect",
    "tls": "TLS failed",
    "body_mismatch": "unexpected page content",
    "too_large": "answer too large",
    "body": "answer broke off",
    "bad_response": "malformed HTTP answer",
    "local": "this host ran out of resources",
    "overloaded": "overloaded",
    "rate_limited": "rate limited",
    "quota": "over quota",
    "auth": "API key refused",
    "billing": "billing problem",
    "server_error": "server error",
    "stalled": "answer stalled",
    "truncated": "answer cut short",
}
# Finer causes (observations.SUB_REASONS) where they say more than the reason.
SUB_REASON_TEXT = {
    ("tls", "expired"): "TLS certificate expired",
    ("tls", "hostname_mismatch"): "TLS certificate for another host name",
    ("tls", "unknown_ca"): "TLS certificate from an unknown authority",
    ("tls", "self_signed"): "TLS certificate self-signed",
    ("tls", "handshake"): "TLS handshake failed",
    ("connect", "refused"): "connection refused",
    ("connect", "reset"): "connection reset",
    ("connect", "unreachable"): "network unreachable",
    ("dns", "nxdomain"): "DNS: no such host",
    ("dns", "servfail"): "DNS server failure",
    ("dns", "timeout"): "DNS lookup timed out",
    ("local", "fd_exhausted"): "this host ran out of file descriptors",
    ("local", "no_buffers"): "this host ran out of network buffers",
    ("local", "no_memory"): "this host ran out of memory",
}


def failure_text(reason: str | None, sub_reason: str | None, status_code: int | None) -> str:
    """A probe failure as a reader puts it: "HTTP 503", "TLS certificate expired"."""
    if reason == "http_status" and status_code:
        return f"HTTP {status_code}"
    if reason is None:
        text = "unknown"
    elif (reason, sub_reason or "") in SUB_REASON_TEXT:
        text = SUB_REASON_TEXT[(reason, sub_reason or "")]
    else:
        text = FAILURE_TEXT.get(reason, reason.replace("_", " "))
        if sub_reason:
            text += f" ({sub_reason.replace('_', ' ')})"
    return f"{text}, HTTP {status_code}" if status_code else text
