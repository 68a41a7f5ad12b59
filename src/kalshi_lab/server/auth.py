"""Checks Kalshi's request signature (API.md section 1) on the portfolio endpoints.

A signed request carries ``KALSHI-ACCESS-KEY`` (the key id), ``KALSHI-ACCESS-TIMESTAMP`` (Unix
milliseconds) and ``KALSHI-ACCESS-SIGNATURE``: base64 RSA-PSS (SHA-256, MGF1 SHA-256, salt as
long as the digest) over ``timestamp + METHOD + path`` with the query string cut off, the
message :func:`kalshi_lab.client.auth.signed_message` builds on the client side.

Every refusal is a 401 naming the header at fault, except a timestamp that is not a number of
milliseconds at all (not ASCII digits, or more than :data:`MAX_STAMP_DIGITS` of them): that is a
malformed request, 400. No header value is ever echoed back.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client.auth import PSS, signed_message
from kalshi_lab.server.errors import ApiError, ServerSetupError, bad_request

KEY_HEADER = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER = "KALSHI-ACCESS-SIGNATURE"
#: how far a request's timestamp may be from the server's wall clock
MAX_SKEW_S = 60.0
#: Unix milliseconds have 13 digits until the year 2286
MAX_STAMP_DIGITS = 16


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM file; ServerSetupError names the file when it is not one."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ServerSetupError(f"public key file {path} cannot be read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ServerSetupError(f"public key file {path} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ServerSetupError(f"public key file {path} holds a key that is not RSA")
    return key


class SignatureVerifier:
    """Accepts requests signed by the private key of ``public_key`` under ``key_id``.

    ``clock`` (Unix seconds) is the wall clock, not the server's market clock: signatures are
    about when the request was sent.
    """

    def __init__(
        self,
        public_key: rsa.RSAPublicKey,
        key_id: str,
        *,
        max_skew_s: float = MAX_SKEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key_id:
            raise ServerSetupError("the API key id is empty")
        self._key = public_key
        self._key_id = key_id
        self._max_skew_ms = max_skew_s * 1000
        self._clock = clock

    def __repr__(self) -> str:
        return "SignatureVerifier(<key hidden>)"

    @property
    def key_id(self) -> str:
        """The API key whose signatures are accepted: the principal they are rate-limited as."""
        return self._key_id

    def verify(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """Return if the request is signed by our key; raise a 401 ApiError otherwise."""
        key_id = headers.get(KEY_HEADER)
        stamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        for name, value in (
            (KEY_HEADER, key_id),
            (TIMESTAMP_HEADER, stamp),
            (SIGNATURE_HEADER, signature),
        ):
            if not value:
                raise unauthorized(f"header {name} is missing")
        assert key_id is not None and stamp is not None and signature is not None
        if not hmac.compare_digest(key_id.encode(), self._key_id.encode()):
            raise unauthorized(f"header {KEY_HEADER} names an API key this server does not know")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_STAMP_DIGITS):
            raise bad_request(
                f"header {TIMESTAMP_HEADER} must be Unix time in milliseconds: at most "
                f"{MAX_STAMP_DIGITS} ASCII digits"
            )
        skew_ms = abs(self._clock() * 1000 - int(stamp))
        if skew_ms > self._max_skew_ms:
            raise unauthorized(
                f"header {TIMESTAMP_HEADER} is {skew_ms / 1000:.0f} s away from the server's "
                f"clock (at most {self._max_skew_ms / 1000:.0f} s allowed)"
            )
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise unauthorized(f"header {SIGNATURE_HEADER} is not base64") from None
        try:
            self._key.verify(raw, signed_message(stamp, method, path), PSS, hashes.SHA256())
        except InvalidSignature:
            raise unauthorized(
                f"header {SIGNATURE_HEADER} does not verify: it must sign timestamp + method + "
                "path (without the query) with the key's private key"
            ) from None
