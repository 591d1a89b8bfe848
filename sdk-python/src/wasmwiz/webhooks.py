"""Check the signature of a WasmWiz webhook before trusting its body.

The server POSTs a detached execution's summary (JSON) with the header
``Wasmwiz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC of
``"<t>.<body>"`` keyed by the account's secret (``whsec_...``, from
:meth:`wasmwiz.Client.account.rotate_webhook_secret`). :func:`verify` checks
it over the raw body bytes, in constant time, and refuses a timestamp more
than ``tolerance`` seconds away from now (a replayed old delivery).

Example::

    event = wasmwiz.webhooks.verify(secret, request.headers["Wasmwiz-Signature"], body)
    print(event["execution_id"], event["outcome"])
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Optional, Union

__all__ = ["HEADER", "InvalidSignature", "sign", "verify"]

#: The header that carries the signature.
HEADER = "Wasmwiz-Signature"
#: A header longer than this is refused unread (one ``t`` and a few ``v1``).
MAX_HEADER_LENGTH = 1024
#: Default seconds a delivery's timestamp may be away from now.
DEFAULT_TOLERANCE = 300


class InvalidSignature(ValueError):
    """The webhook's signature header is missing, malformed, wrong or too old."""


def sign(secret: str, body: bytes, timestamp: Optional[int] = None) -> str:
    """The header value the server would send for ``body`` (for tests and local tools)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, str(t), body)}"


def _mac(secret: str, t: str, body: bytes) -> str:
    return hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[str, list[str]]:
    """The header's timestamp and its ``v1`` signatures."""
    if len(header) > MAX_HEADER_LENGTH:
        raise InvalidSignature(f"the signature header is longer than {MAX_HEADER_LENGTH} bytes")
    t: Optional[str] = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature(f"malformed signature header: {part.strip()!r} is not key=value")
        if key == "t":
            t = value
        elif key == "v1":
            signatures.append(value)
    if t is None or not t.isdigit():
        raise InvalidSignature("the signature header has no valid t=<unix seconds>")
    if not signatures:
        raise InvalidSignature("the signature header has no v1= signature")
    return t, signatures


def verify(
    secret: str,
    header: Optional[str],
    body: Union[bytes, bytearray, memoryview],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: Optional[float] = None,
) -> Any:
    """Check a delivery's signature; return its JSON body, parsed.

    Args:
        secret: The account's webhook secret (``whsec_...``).
        header: The ``Wasmwiz-Signature`` header's value (``None``: missing).
        body: The request body, exactly as received (not re-encoded JSON).
        tolerance: Seconds the timestamp may differ from now.
        now: The current unix time (default ``time.time()``).

    Returns:
        The parsed JSON body (``"type"``: ``"execution.ended"`` or
        ``"batch.ended"``).

    Raises:
        InvalidSignature: The header is missing or malformed, the timestamp
            is outside ``tolerance``, or no ``v1`` signature matches.
    """
    if not header:
        raise InvalidSignature(f"the {HEADER} header is missing")
    t, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - int(t)) > tolerance:
        raise InvalidSignature(
            f"the signature's timestamp is {abs(current - int(t)):.0f} s away from now "
            f"(at most {tolerance:g} s): a replayed or delayed delivery"
        )
    expected = _mac(secret, t, bytes(body))
    # Compare every candidate (no early exit on the first match).
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise InvalidSignature("the signature does not match the body under this secret")
    return json.loads(bytes(body))
