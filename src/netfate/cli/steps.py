"""Progress of a long command (testbed up/down) as a rich bar of its steps, on stderr; plain
lines when stdout or stderr is not a terminal, nothing with --json/--quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from netfate.cli.common import console


def interactive() -> bool:
    """Whether both stdout and the console (stderr) are terminals."""
    return sys.stdout.isatty() and console.is_terminal


@contextmanager
def steps(quiet: bool, title: str, total: int) -> Iterator[Callable[[str], None]]:
    """A ``say(msg)`` for the operation's progress callback: each call is one of about
    ``total`` steps (the bar completes when the block ends, however many there were)."""
    if quiet:
        yield lambda _: None
        return
    if not interactive():
        def say(msg: str) -> None:
            console.print(f"[dim]{title}:[/] {msg}")
        yield say
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[step]}"), console=console,
                  transient=True) as bar:
        task = bar.add_task(title, total=max(1, total), step="")

        def advance(msg: str) -> None:
            t = bar.tasks[0]
            if t.total is not None and t.completed + 1 >= t.total:
                bar.update(task, total=t.completed + 2)  # more steps than expected
            bar.update(task, advance=1, step=msg)
        yield advance
        bar.update(task, completed=bar.tasks[0].total)
