"""Kalshi's request signing: RSA-PSS over ``timestamp_ms + METHOD + path`` (API.md section 1).

Credentials come from the environment only, never from params.yaml:

* ``KALSHI_API_KEY_ID``: the key id (a UUID), sent as ``KALSHI-ACCESS-KEY``;
* ``KALSHI_PRIVATE_KEY_PATH``: a PEM file holding the RSA private key, or
* ``KALSHI_PRIVATE_KEY``: the PEM text itself.

:class:`KalshiSigner` keeps both out of ``repr``, logs and error messages: an error names the
variable that is missing or unusable, never what it holds.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kalshi_lab.client.errors import CredentialsError

KEY_ID_VAR = "KALSHI_API_KEY_ID"
KEY_PATH_VAR = "KALSHI_PRIVATE_KEY_PATH"
KEY_PEM_VAR = "KALSHI_PRIVATE_KEY"

#: the padding Kalshi verifies: PSS with MGF1(SHA-256) and a salt as long as the digest
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def signed_message(timestamp_ms: str, method: str, path: str) -> bytes:
    """What is signed: the timestamp, the method and the URL path WITHOUT its query string."""
    return f"{timestamp_ms}{method.upper()}{path.split('?', 1)[0]}".encode()


def load_private_key(pem: bytes, source: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM bytes; ``source`` names where they came from in errors."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CredentialsError(
            f"{source} is not an unencrypted PEM RSA private key (Kalshi's download format)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError(f"{source} holds a key that is not RSA")
    return key


class KalshiSigner:
    """Signs requests with one API key; build it with :meth:`from_env` in normal use."""

    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if not key_id:
            raise CredentialsError(f"{KEY_ID_VAR} is empty")
        self._key_id = key_id
        self._key = private_key
        self._clock_ms = clock_ms

    def __repr__(self) -> str:
        return "KalshiSigner(<credentials hidden>)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KalshiSigner:
        """The signer the environment describes; a CredentialsError names what is missing."""
        env = os.environ if environ is None else environ
        key_id = env.get(KEY_ID_VAR, "").strip()
        if not key_id:
            raise CredentialsError(
                f"{KEY_ID_VAR} is not set: portfolio and order endpoints need an API key id"
            )
        if env.get(KEY_PEM_VAR, "").strip():
            key = load_private_key(env[KEY_PEM_VAR].encode(), KEY_PEM_VAR)
        elif env.get(KEY_PATH_VAR, "").strip():
            path = Path(env[KEY_PATH_VAR]).expanduser()
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise CredentialsError(
                    f"{KEY_PATH_VAR} names a file that cannot be read ({exc.strerror})"
                ) from None
            key = load_private_key(pem, f"the file named by {KEY_PATH_VAR}")
        else:
            raise CredentialsError(
                f"neither {KEY_PATH_VAR} nor {KEY_PEM_VAR} is set: "
                "portfolio and order endpoints need the API key's private key"
            )
        return cls(key_id, key)

    def headers(self, method: str, path: str) -> dict[str, str]:
        """The three KALSHI-ACCESS-* headers for a request to ``path`` (query ignored)."""
        ts = str(self._clock_ms())
        signature = self._key.sign(signed_message(ts, method, path), PSS, hashes.SHA256())
        return {
            "KALSHI-ACCESS-KEY": self._key_id,
            "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
        }
