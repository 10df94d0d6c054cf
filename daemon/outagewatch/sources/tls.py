"""Certificate expiry of the chain a server presented."""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509


def der_not_after(der: bytes) -> float:
    """The notAfter of a DER X.509 certificate, as a Unix timestamp."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def _chain_ders(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """DER bytes of every certificate presented, leaf first, where Python can tell."""
    # Public from Python 3.13, as DER bytes; before that only the leaf can be had.
    chain = getattr(ssl_object, "get_unverified_chain", None)
    ders: list[bytes] = [bytes(der) for der in (chain() or [])] if chain is not None else []
    if not ders:
        leaf = ssl_object.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    return ders


def earliest_expiry(ssl_object: Any) -> float | None:
    """Earliest notAfter over the presented chain (the leaf where only it is known)."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    expiries = []
    for der in _chain_ders(ssl_object):
        try:
            expiries.append(der_not_after(der))
        except ValueError:
            continue  # an unreadable certificate tells us nothing about expiry
    return min(expiries) if expiries else None
