"""What every command shares: JSON output, clear errors, progress."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from netfate.errors import InvalidInput, NetfateError
from netfate.strict_json import unique_pairs, unpaired_text

if TYPE_CHECKING:
    from netfate.settings import NetfateSettings

# Into a file or a pipe (CI logs, `2> out.txt`), rich would cut tables to 80 columns; a
# terminal's own width still wins.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
# What a command answers (its tables) goes to stdout, to be piped and grepped; progress and
# messages stay on stderr (new-user probe, 2026-12-05: `users list | grep` found nothing).
results = Console(width=None if sys.stdout.isatty() else 160)
T = TypeVar("T")
MAX_DOCUMENT_BYTES = 1024 * 1024  # a JSON config or state document given to a command


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


SHOWN_CHARS = 64  # of a user's value echoed back in an error


def shown(value: str) -> str:
    """`value` as an error message quotes it: repr, cut to SHOWN_CHARS characters (a
    5,000-character argument is not printed back whole)."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def checked(kind: str) -> Callable[[Any], Any]:
    """A typer callback that checks an argument as netfate.validators' `kind` (the API's own
    check: ASCII digits only, unicast station MACs, ...). A bad value stops the command
    before anything is done, with click's "Invalid value for '<param>'" naming it (the
    value quoted as `shown` does)."""
    from netfate import validators

    def one(v: Any) -> Any:
        try:
            return validators.check(kind, v)
        except ValueError as exc:
            msg = str(exc)
            if isinstance(v, str) and len(v) > SHOWN_CHARS:
                msg = msg.replace(repr(v), shown(v))[:4 * SHOWN_CHARS + 200]
            raise typer.BadParameter(msg) from None

    def callback(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [one(v) for v in value]
        return one(value)

    return callback


def ascii_int(lo: int, hi: int) -> Callable[[Any], int]:
    """A typer `parser` for a number in [lo, hi] written in ASCII digits (a leading '-'
    allowed, to be named out of range): click's INT would take int("٨٠") as 80, the way a
    port or prefix length must not be given."""
    def parse(value: Any) -> int:
        digits = value[1:] if isinstance(value, str) and value[:1] == "-" else value
        if isinstance(value, int) and not isinstance(value, bool):
            n = value  # a default
        elif (isinstance(digits, str) and digits.isascii() and digits.isdigit()
              and len(digits) <= 20):
            n = int(value)
        else:
            raise typer.BadParameter(f"{shown(str(value))} is not a number written in "
                                     "digits 0-9")
        if not lo <= n <= hi:
            raise typer.BadParameter(f"{n} is not in {lo}-{hi}")
        return n

    return parse


def given_path(value: Any) -> Path:
    """A typer `parser` for a path: an empty or blank one (an unset shell variable) is
    refused, where Path("") would quietly be the current directory."""
    if isinstance(value, Path):
        return value  # a default
    text = str(value)
    if not text.strip():
        raise typer.BadParameter("the path is empty (an unset variable?); give a path")
    return Path(text)


def nats_servers(value: Any) -> str:
    """A typer `parser` for a NATS URL or a cluster's comma-separated member URLs
    (bus/urls.py): BadParameter naming the part at fault."""
    from netfate.bus.urls import servers
    try:
        servers(str(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return str(value)


def controller_targets(value: Any) -> str:
    """A typer `parser` for OpenFlow controller targets, comma-separated
    (controller/targets.py): BadParameter naming the target at fault."""
    from netfate.controller.targets import targets
    try:
        return ",".join(targets(str(value)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def read_file(path: Path, what: str, max_bytes: int) -> bytes:
    """A file the user names, read bounded: a regular file of at most `max_bytes` (a fifo
    would block, /dev/zero never end); InvalidInput naming it otherwise."""
    try:  # O_NONBLOCK: opening a fifo must not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory
        os.close(fd)
        raise InvalidInput(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{what} {path} is over {max_bytes} bytes")
    return data


def _not_a_number(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite(token: str) -> float:
    x = float(token)
    if not math.isfinite(x):
        raise ValueError(f"{token[:40]} is beyond the range of a JSON number")
    return x


def json_document(text: str, what: str) -> Any:
    """Strict JSON a user gives a command, or @file (read bounded): NaN, Infinity and
    1e309 are refused (no JSON numbers; the API refuses them too), as is an object naming a
    member twice or a string with a lone surrogate (netfate.strict_json), as is an empty or
    blank text or file (an unset shell variable is not a document). InvalidInput naming
    `what` otherwise."""
    if text.startswith("@"):
        name = text[1:]
        if not name.strip():
            raise InvalidInput(f"{what}: give a file name after '@'")
        raw = read_file(Path(name), f"{what} file", MAX_DOCUMENT_BYTES)
        what = f"{what} file {name}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} is not UTF-8") from None
        if not text.strip():
            raise InvalidInput(f"{what} is empty")
    elif not text.strip():
        raise InvalidInput(f"{what} is empty (an unset variable?); give a JSON document")
    try:
        doc = json.loads(text, parse_constant=_not_a_number, parse_float=_finite,
                         object_pairs_hook=unique_pairs)
    except ValueError as exc:  # DuplicateKey too
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    bad = unpaired_text(doc)
    if bad is not None:
        raise InvalidInput(f"{what} has a string with {bad} (I-JSON, RFC 7493 §2.1)")
    return doc


def json_object(text: str | None, what: str) -> dict[str, Any]:
    """json_document that must be an object; {} when not given (None). Given empty or blank,
    it is refused, not taken as {}: `update ... "$CFG"` with CFG unset must not wipe a
    config ({} given explicitly is)."""
    if text is None:
        return {}
    if not text.strip():
        raise InvalidInput(f"{what} is empty (an unset variable?); give a JSON object, "
                           "{} for an empty one")
    doc = json_document(text, what)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def need_root() -> None:
    if os.geteuid() != 0:
        console.print("[red]error:[/] this command needs root (namespaces, OVS, cgroups)")
        raise typer.Exit(2)


def fail(msg: str) -> NoReturn:
    """End the command with one clear line on stderr and exit code 1."""
    console.print(f"[red]error:[/] {escape(msg)}")  # its words, not markup
    raise typer.Exit(1)


def guarded(fn: Callable[[], T]) -> T:
    """Run fn; a NetfateError becomes one clear line on stderr and exit code 1."""
    try:
        return fn()
    except NetfateError as exc:
        fail(str(exc))


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
