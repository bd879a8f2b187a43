"""`kwx run`, `kwx sim serve` and `kwx bench live` (issue 7)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    del app, bench_app
