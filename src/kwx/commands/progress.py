"""The one progress bar the long-running commands show.

Why shared: every bulk command (import, ingest, weather backfill, fusion, model sweeps) shows
the same columns — label, bar, done/total, elapsed, the current item — on stderr, so stdout
keeps only results and a user reads every bar the same way.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(label: str, console: Console) -> Progress:
    """A bar titled `label` (rich markup and task-field templates allowed) on `console`."""
    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    )
