"""`kwx model train | sweep | calibrate` (issue 5)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    model_app = typer.Typer(no_args_is_help=True, help="Cross-bracket classifiers and calibrators.")
    app.add_typer(model_app, name="model")
