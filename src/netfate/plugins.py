"""Entry-point plugins (compute drivers by flavour, placement policies): finding one by name.

A broken third-party plugin must not crash whoever loads it: every failure is collected as a
reason, and the caller names them in its own error when nothing usable was found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from typing import TypeVar

T = TypeVar("T")


class Refused(Exception):
    """An entry point loaded, but what it gives is not usable; the message says why."""


def load(
    eps: Iterable[metadata.EntryPoint],
    name: str,
    accept: Callable[[object], T],
    *,
    failed: str = "failed",
) -> tuple[T | None, list[str]]:
    """The first of the entry points `eps` called `name` that loads and that `accept` turns
    into a T, with the reasons the others were passed over ("entry point NAME = VALUE ...").

    `accept` raises Refused to pass one over with its message; any other exception from
    loading or from `accept` is reported after `failed`. (None, reasons) if none is usable.
    """
    errors: list[str] = []
    for ep in eps:
        if ep.name != name:
            continue
        try:
            return accept(ep.load()), errors
        except Refused as e:
            errors.append(f"entry point {ep.name} = {ep.value} {e}")
        except Exception as e:  # a third party's import or constructor: report, don't crash
            errors.append(f"entry point {ep.name} = {ep.value} {failed}: {e}")
    return None, errors
