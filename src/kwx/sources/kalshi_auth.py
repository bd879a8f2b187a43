"""Kalshi request signing: RSA-PSS (SHA-256, MGF1-SHA-256, salt = digest length).

The message is timestamp_ms + METHOD + path, where path runs from the host root (including
/trade-api/v2) without the query string. A fresh timestamp is taken for every request, so a
retry never replays a signature. The private key never leaves this object: it is not in any
repr; the key id is a secret too (an account identifier): hidden in the repr and
registered with :mod:`kwx.domain.secrets`, so an error body that echoes the request headers
never carries it into a log line or meta.bad_input.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kwx.domain.secrets import register_secret

KEY_HEADER = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER = "KALSHI-ACCESS-SIGNATURE"

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def signing_message(timestamp_ms: str, method: str, url_or_path: str) -> bytes:
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0]
    return (timestamp_ms + method.upper() + path).encode()


class KalshiSigner:
    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.key_id = key_id
        register_secret(key_id)  # redacted from every error, stored body and log line
        self._key = private_key
        self._clock_ms = clock_ms

    @classmethod
    def from_pem_file(cls, key_id: str, path: Path) -> KalshiSigner:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot load the Kalshi private key from {path}: {type(exc).__name__}"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return cls(key_id, key)

    def __repr__(self) -> str:
        return "KalshiSigner(key_id=<hidden>, private_key=<hidden>)"

    def headers(self, method: str, url_or_path: str) -> dict[str, str]:
        timestamp = str(self._clock_ms())
        signature = self._key.sign(
            signing_message(timestamp, method, url_or_path), _PSS, hashes.SHA256()
        )
        return {
            KEY_HEADER: self.key_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        }


def verify_signature(
    public_key: rsa.RSAPublicKey, headers: dict[str, str] | object, method: str, path: str
) -> bool:
    """Server side (simulator, tests): does this request carry a valid signature?"""
    get = getattr(headers, "get", None)
    if get is None:
        return False
    timestamp, signature = get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        return False
    try:
        public_key.verify(
            base64.b64decode(signature),
            signing_message(timestamp, method, path),
            _PSS,
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True
