"""Secrets out of every text kwx keeps or shows: error messages, stored bodies, log lines.

Why one module: a server that echoes the request in its error body (many do on a 400 or
401: "missing header", "bad signature", a debug dump) hands our key id, a signature or a
``key=`` query parameter back to us, and that text used to travel verbatim into exceptions,
log lines and ``meta.bad_input``. :func:`redact` removes them by two rules:

* **by shape**: the value after a credential-bearing header or parameter name, in every
  form an echo takes (``Name: value`` lines, JSON ``"name": "value"``, Python reprs
  ``'name': 'value'``, ``name=value`` query strings): KALSHI-ACCESS-KEY / -SIGNATURE,
  Authorization, Cookie, X-Api-Key, ``key=``, ``api_key=``, ``token=``, …; PEM private key
  blocks;
* **by value**: every string registered with :func:`register_secret` (the Kalshi key id when a
  signer is made, the Visual Crossing key, the database password), wherever it appears.

:func:`install_log_redaction` makes every log record's message pass through :func:`redact`
(a record factory, so every handler and pytest's caplog see the redacted text). Pure text
rules, no I/O: the sources and the store both use it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Final

__all__ = ["REDACTED", "install_log_redaction", "redact", "register_secret"]

REDACTED: Final = "***"
_MIN_SECRET_LEN: Final = 6  # shorter strings are too common to replace blindly

_NAMES: Final = (
    r"kalshi-access-key|kalshi-access-signature|authorization|proxy-authorization|cookie|"
    r"set-cookie|x-api-key|api-key|apikey|api_key|access_token|refresh_token|token|"
    r"password|passwd|secret|signature|key"
)
# "Name: value" header lines (to the end of the line).
_HEADER_LINE: Final = re.compile(rf"(?im)^(\s*(?:{_NAMES})\s*:[ \t]*)(\S.*)$")
# The same inside a longer text where lines are escaped ("...\\nKALSHI-ACCESS-KEY: x\\n..." in
# a JSON string): only the unmistakable credential headers, so "missing key: ticker" stays.
_HEADERS: Final = (
    r"kalshi-access-key|kalshi-access-signature|authorization|proxy-authorization|cookie|"
    r"set-cookie|x-api-key|api-key|apikey|api_key"
)
_INLINE_HEADER: Final = re.compile(
    rf"""(?i)((?:^|[\s"'{{,;]|\\[nrt])(?:{_HEADERS})\s*:\s*)([^\s"'\\,;]+)"""
)
# JSON / repr pairs: "name": "value" or 'name': 'value' (the value may hold escapes).
_QUOTED_PAIR: Final = re.compile(
    rf"""(?i)(["'](?:{_NAMES})["']\s*[:=,]\s*["'])((?:\\.|[^"'\\])*)(["'])"""
)
# Query strings and form bodies: name=value up to a separator.
_QUERY: Final = re.compile(rf"""(?i)((?:^|[?&;\s"'(,])(?:{_NAMES})=)([^&\s"'#<>,;)]+)""")
# Bearer / Basic tokens written inline ("Authorization: Bearer x" is caught above too).
_SCHEME: Final = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_PEM: Final = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)

# Every shape above needs one of these words in the text.
_TRIGGERS: Final = ("key", "auth", "cookie", "token", "secret", "sign", "passw", "bearer", "basic")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears from now on (in this process)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every credential (see the module notes) replaced by ``***``."""
    if not text:
        return text
    lowered = text.lower()
    out = text
    if any(t in lowered for t in _TRIGGERS):  # most text has none: skip the regexes
        out = _by_shape(out)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out


def _by_shape(text: str) -> str:
    out = _PEM.sub(f"-----PRIVATE KEY {REDACTED}-----", text)
    out = _HEADER_LINE.sub(lambda m: m.group(1) + REDACTED, out)
    out = _INLINE_HEADER.sub(lambda m: m.group(1) + REDACTED, out)
    out = _QUOTED_PAIR.sub(lambda m: m.group(1) + REDACTED + m.group(3), out)
    out = _QUERY.sub(lambda m: m.group(1) + REDACTED, out)
    return _SCHEME.sub(lambda m: m.group(1) + " " + REDACTED, out)


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to a str, or to each str inside lists / dicts (JSON bodies)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class _RedactedRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 (logging's name)
        return redact(super().getMessage())


_installed = False


def install_log_redaction() -> None:
    """Make every log record's message redacted (idempotent; keeps any custom factory's
    records as they are, only their message text is redacted)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()
    if previous is logging.LogRecord:
        logging.setLogRecordFactory(_RedactedRecord)
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(factory)


install_log_redaction()
