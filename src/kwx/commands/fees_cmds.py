"""`kwx fees check`: the fee model against real account fills (issue 6)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    del app, bench_app
