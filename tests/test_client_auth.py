"""Request signing and the rate limiter: what Kalshi verifies, and secrets that never leak."""

import base64
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client.auth import PSS, KalshiSigner, signed_message
from kalshi_lab.client.errors import CredentialsError
from kalshi_lab.client.ratelimit import TokenBucket

KEY_ID = "3f6c1a2e-0000-4000-8000-5ecre7key1d0"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_signature_covers_timestamp_method_and_path_without_query(private_key):
    signer = KalshiSigner(KEY_ID, private_key, clock_ms=lambda: 1704398400000)
    headers = signer.headers("get", "/trade-api/v2/portfolio/fills?limit=5")
    assert headers["KALSHI-ACCESS-KEY"] == KEY_ID
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1704398400000"
    message = b"1704398400000GET/trade-api/v2/portfolio/fills"
    assert signed_message("1704398400000", "get", "/trade-api/v2/portfolio/fills?x=1") == message
    signature = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"])
    private_key.public_key().verify(signature, message, PSS, hashes.SHA256())  # raises if wrong


def test_keys_come_from_the_environment(tmp_path, private_key):
    key_file = tmp_path / "kalshi.pem"
    key_file.write_bytes(pem(private_key))
    by_path = KalshiSigner.from_env(
        {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(key_file)}
    )
    by_text = KalshiSigner.from_env(
        {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY": pem(private_key).decode()}
    )
    for signer in (by_path, by_text):
        h = signer.headers("POST", "/trade-api/v2/portfolio/orders")
        message = signed_message(
            h["KALSHI-ACCESS-TIMESTAMP"], "POST", "/trade-api/v2/portfolio/orders"
        )
        private_key.public_key().verify(
            base64.b64decode(h["KALSHI-ACCESS-SIGNATURE"]), message, PSS, hashes.SHA256()
        )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "KALSHI_API_KEY_ID"),
        ({"KALSHI_API_KEY_ID": KEY_ID}, "KALSHI_PRIVATE_KEY_PATH"),
        (
            {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY": "-----BEGIN nonsense"},
            "KALSHI_PRIVATE_KEY",
        ),
        (
            {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": "/nonexistent/key.pem"},
            "KALSHI_PRIVATE_KEY_PATH",
        ),
    ],
)
def test_a_missing_or_malformed_credential_is_named_never_shown(env, names):
    with pytest.raises(CredentialsError, match=names) as info:
        KalshiSigner.from_env(env)
    assert KEY_ID not in str(info.value)
    assert "nonsense" not in str(info.value)


def test_the_signer_never_shows_its_credentials(private_key):
    signer = KalshiSigner(KEY_ID, private_key)
    assert KEY_ID not in repr(signer) and KEY_ID not in str(signer)


def test_token_bucket_paces_to_its_rate():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(10, capacity=1, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[0] == 0.0
    assert waits[1:] == pytest.approx([0.1] * 4)
    assert now[0] == pytest.approx(0.4)
    assert not bucket.try_acquire()
    now[0] += 0.1
    assert bucket.try_acquire()


def test_token_bucket_is_shared_by_threads():
    bucket = TokenBucket(100, capacity=1)
    began = time.perf_counter()
    threads = [
        threading.Thread(target=lambda: [bucket.acquire() for _ in range(10)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 tokens at 100/s, one available at once: at least 0.39 s whatever the threads do
    assert time.perf_counter() - began >= 0.38
