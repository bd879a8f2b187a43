"""`kwx fusion fit | run | report` (issue 5)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    fusion_app = typer.Typer(no_args_is_help=True, help="Fuse p_mkt and p_wx into p_fused.")
    app.add_typer(fusion_app, name="fusion")
