"""Secrets kept out of log lines: passwords in URLs, API keys in query strings, credentials in
headers.

``install()`` puts ``redact`` in front of every log record the process makes, whatever logger
or handler it goes through (uvicorn's access log included): the message, its arguments and a
formatted traceback are redacted when the record is made. ``RedactingFilter`` does the same as
a ``logging.Filter``, for a handler that should be safe on its own.

>>> redact("broker mqtt://ingest:hunter2@10.0.0.5:1883 down")
'broker mqtt://ingest:***@10.0.0.5:1883 down'
>>> redact('"GET /stream?scenario=mf01&api_key=k3y HTTP/1.1" 200')
'"GET /stream?scenario=mf01&api_key=*** HTTP/1.1" 200'
>>> redact("Authorization: Bearer abc.def")
'Authorization: Bearer ***'
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["redact", "install", "RedactingFilter", "MASK"]

MASK = "***"
_RULES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"), rf"\g<head>{MASK}"),
    # key=value secrets in query strings, form bodies, settings dumps (api_key=, password=, token=, ...)
    (re.compile(r"(?i)(?P<head>\b(?:[a-z_]*api_key|[a-z_]*password|passwd|pwd|secret|token|access_token)"
                r"(?:%3D|=))[^&\s\"',;]+"), rf"\g<head>{MASK}"),
    # credential headers: Authorization: Bearer/Basic X, X-API-Key: X, Cookie: ...api_key=X
    (re.compile(r"(?i)(?P<head>\bauthorization[\"']?\s*[:=,]\s*[\"']?(?:bearer|basic|token)?\s*)[^\s\"',;]+"),
     rf"\g<head>{MASK}"),
    (re.compile(r"(?i)(?P<head>\bx-api-key[\"']?\s*[:=,]\s*[\"']?)[^\s\"',;]+"), rf"\g<head>{MASK}"),
]


def redact(text: str) -> str:
    """``text`` with every credential the rules know replaced by ``***``."""
    if not text:
        return text
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def _redact_value(v: Any) -> Any:
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, bytes):
        return redact(v.decode("utf-8", "replace"))
    return v


def _scrub(record: logging.LogRecord) -> None:
    if getattr(record, "_redacted", False):
        return
    record._redacted = True
    # the arguments one by one first, so that a formatter that reads them (uvicorn's access
    # log takes the request line from them) still finds them where it expects
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_value(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_value(a) for k, a in record.args.items()}
    if not record.args:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
    else:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it for logging to report
            return
        clean = redact(message)
        if clean != message:  # a secret made of the format and its arguments together
            record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Redacts a record on its way through a handler or logger; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


_installed = False


def install(*, rate_limit: bool = True) -> None:
    """Redact every log record made in this process from now on (idempotent); with ``rate_limit``,
    also let a repeated line through only a few times a minute and count the rest
    (``minewatch.lograte``)."""
    global _installed
    if rate_limit:
        from minewatch import lograte

        lograte.install()
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
