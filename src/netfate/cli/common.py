"""What every command shares: JSON output, clear errors, progress."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from netfate.errors import NetfateError

if TYPE_CHECKING:
    from netfate.settings import NetfateSettings

console = Console(stderr=True)
T = TypeVar("T")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def checked(kind: str) -> Callable[[Any], Any]:
    """A typer callback that checks an argument as netfate.validators' `kind` (the API's own
    check: ASCII digits only, unicast station MACs, ...). A bad value stops the command
    before anything is done, with click's "Invalid value for '<param>'" naming it."""
    from netfate import validators

    def callback(value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, (list, tuple)):
                return [validators.check(kind, v) for v in value]
            return validators.check(kind, value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return callback


def ascii_int(lo: int, hi: int) -> Callable[[Any], int]:
    """A typer `parser` for a number in [lo, hi] written in ASCII digits: click's INT would
    take int("٨٠") as 80, the way a port or prefix length must not be given."""
    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value  # a default
        elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
            n = int(value)
        else:
            raise typer.BadParameter(f"{value!r} is not a number written in digits 0-9")
        if not lo <= n <= hi:
            raise typer.BadParameter(f"{n} is not in {lo}-{hi}")
        return n

    return parse


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


def settings(**flags: Mapping[str, Any]) -> NetfateSettings:
    """The command's settings, built once at its start: NETFATE_* variables with the flags
    given on top (``group={"field": value}``, None: flag not given). Sets the process's run
    dir. A bad value ends the command with one line naming the variable or flag."""
    from netfate import paths
    from netfate.settings import load_settings

    s = guarded(lambda: load_settings(**flags))
    paths.configure(s.paths.run_dir)
    return s


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
