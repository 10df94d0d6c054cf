"""Certificate expiry of the chain a server presented, without extra dependencies."""

from __future__ import annotations

import calendar
import ssl
import time
from typing import Any


def _read_tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, start of value, end of value) of the DER element at pos."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def _parse_time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 1950-2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return float(calendar.timegm(time.strptime(text.rstrip("Z"), "%Y%m%d%H%M%S")))


def der_not_after(der: bytes) -> float:
    """The notAfter of a DER X.509 certificate, as a Unix timestamp."""
    _, pos, _ = _read_tlv(der, 0)  # Certificate
    _, pos, _ = _read_tlv(der, pos)  # TBSCertificate
    tag, _, end = _read_tlv(der, pos)
    if tag == 0xA0:  # explicit version
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, pos = _read_tlv(der, pos)
    _, pos, _ = _read_tlv(der, pos)  # validity
    _, _, pos = _read_tlv(der, pos)  # notBefore
    tag, start, end = _read_tlv(der, pos)
    return _parse_time(tag, der[start:end])


def earliest_expiry(ssl_object: Any) -> float | None:
    """Earliest notAfter over the presented chain (the leaf where only it is known)."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    ders: list[bytes] = []
    chain = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if chain is not None:
        ders = [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain() or []]  # type: ignore[attr-defined]
    if not ders:
        leaf = ssl_object.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    expiries = []
    for der in ders:
        try:
            expiries.append(der_not_after(der))
        except (IndexError, ValueError):
            continue  # an unreadable certificate tells us nothing about expiry
    return min(expiries) if expiries else None
