"""What every command shares: JSON output, clear errors, progress."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console

from netfate.errors import NetfateError

console = Console(stderr=True)
T = TypeVar("T")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def need_root() -> None:
    if os.geteuid() != 0:
        console.print("[red]error:[/] this command needs root (namespaces, OVS, cgroups)")
        raise typer.Exit(2)


def guarded(fn: Callable[[], T]) -> T:
    """Run fn; a NetfateError becomes one clear line on stderr and exit code 1."""
    try:
        return fn()
    except NetfateError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


@contextmanager
def progress(quiet: bool, title: str) -> Iterator[Callable[[str], None]]:
    if quiet or not console.is_terminal:
        def say(msg: str) -> None:
            if not quiet:
                console.print(f"[dim]{title}:[/] {msg}")
        yield say
        return
    with console.status(title) as status:
        def update(msg: str) -> None:
            status.update(f"{title}: {msg}")
        yield update
