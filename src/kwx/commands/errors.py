"""User errors as one line naming the setting or input, never a traceback.

Two halves:

* :func:`fail` is what a command raises for a problem it recognises itself (a bad option, a
  missing file): the message in red on stderr, exit code 1.
* :func:`explain` recognises the errors that escape a command because the *user's*
  environment is wrong rather than the code: an invalid setting (pydantic's multi-line
  validation report), a store that is not migrated or not reachable, an unknown city, a
  missing file. :func:`run_cli` (the ``kwx`` entry point) turns those into one line and exit
  code 1 wherever they are raised, so a command that forgot to catch one does not trace back.
  Anything else is a bug and keeps its traceback.

Secrets: a settings error never echoes the value of a secret field (the key id, the
database URL, the VC key), and a PostgreSQL connection error is shown without the URL.
"""

from __future__ import annotations

import datetime as dt
import enum
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Final

import psycopg
import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.markup import escape

__all__ = ["explain", "fail", "parse_date", "run_cli", "settings_error"]

err = Console(stderr=True)

_SECRET_FIELDS: Final = frozenset({"kwx_database_url", "vc_api_key", "kalshi_api_key_id"})


def _say(message: str) -> None:
    # One line whatever the message holds (libpq's errors carry a second, indented line)
    # and whatever the console width (soft_wrap: the terminal wraps, rich does not break it).
    text = " ".join(message.split())
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as the command's one-line error; raise the returned Exit."""
    _say(message)
    return typer.Exit(code=1)


def parse_date(value: str, option: str) -> dt.date:
    """An ISO date option, or a one-line error naming the option (not Python's own
    "Invalid isoformat string" / "day is out of range for month")."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} must be a date like 2024-07-01, not {value!r}") from None


def _choices(field: str) -> list[str]:
    """The valid values of a settings field that is an enum (or an optional enum)."""
    from kwx.config import Settings

    info = Settings.model_fields.get(field)
    if info is None:
        return []
    annotation: Any = info.annotation
    candidates = [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        candidates = list(typing.get_args(annotation))
    for c in candidates:
        if isinstance(c, type) and issubclass(c, enum.Enum):
            return [str(m.value) for m in c]
    return []


def settings_error(exc: ValidationError) -> str:
    """One line per bad setting, by its environment name: what was given, what is valid."""
    parts: list[str] = []
    for e in exc.errors():
        loc = e.get("loc") or ("?",)
        field = str(loc[0])
        env = field.upper()
        given = e.get("input")
        shown = (
            "(hidden: a secret)"
            if field in _SECRET_FIELDS or isinstance(given, SecretStr)
            else repr(given)
        )
        choices = _choices(field)
        valid = f"; valid: {', '.join(choices)}" if choices else f"; {e.get('msg', 'invalid')}"
        parts.append(f"setting {env}={shown} is not valid{valid}")
    return " | ".join(parts) + " (environment or .env)"


def _relation(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary or str(exc).splitlines()[0]
    return diag


def explain(exc: BaseException) -> str | None:
    """The one-line message for a user error, or None for anything that is a bug."""
    from kwx.registry import RegistryError, UnknownCityError
    from kwx.store.engine import StoreError

    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return settings_error(exc)
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        return (
            f"the store is not ready ({_relation(exc)}): run kwx db upgrade, then the import "
            "or backfill that fills it"
        )
    if isinstance(exc, psycopg.errors.UndefinedColumn):
        return f"the store's schema is older than this kwx ({_relation(exc)}): run kwx db upgrade"
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot reach PostgreSQL: {_relation(exc)} (check KWX_DATABASE_URL)"
    if isinstance(exc, StoreError | RegistryError):
        return str(exc)
    if isinstance(exc, UnknownCityError):
        return str(exc)
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    return None


def run_cli(app: Callable[[], Any]) -> None:
    """Run the Typer app; a user error that escapes a command becomes one line, exit 1."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        _say(message)
        sys.exit(1)
