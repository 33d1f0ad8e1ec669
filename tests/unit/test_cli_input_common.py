"""The CLI's shared input checks (cli/common.py): numbers in ASCII digits within a range,
non-empty paths, and errors that quote a long value cut short."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from netfate.cli.common import SHOWN_CHARS, ascii_int, checked, given_path, shown


def test_ascii_int() -> None:
    parse = ascii_int(1280, 9000)
    assert parse("1500") == 1500 and parse(9000) == 9000 and parse("01500") == 1500
    arabic_1500 = "\u0661\u0665\u0660\u0660"  # int() takes it as 1500
    for bad, words in (("-5", "-5 is not in 1280-9000"), ("70000", "70000 is not in"),
                       (arabic_1500, "not a number written in digits"), ("", "not a number"),
                       ("-", "not a number"), ("1e3", "not a number"), (True, "not a number"),
                       ("9" * 21, "not a number"), ("+1500", "not a number")):
        with pytest.raises(typer.BadParameter, match=words):
            parse(bad)
    assert ascii_int(0, 10**12)("1700000000") == 1700000000  # ten digits and more


def test_given_path() -> None:
    assert given_path("a/b") == Path("a/b") and given_path(Path("x")) == Path("x")
    for blank in ("", " ", "\t\n"):
        with pytest.raises(typer.BadParameter, match="the path is empty"):
            given_path(blank)


def test_shown_and_checked_cut_a_long_value_short() -> None:
    assert shown("cpe1") == "'cpe1'"
    long = "x" * 5000
    assert shown(long) == f"{'x' * SHOWN_CHARS!r}... (5000 characters)"
    with pytest.raises(typer.BadParameter) as err:
        checked("name")(long)
    assert len(str(err.value)) < 500 and "(5000 characters)" in str(err.value)
    with pytest.raises(typer.BadParameter) as err:
        checked("name")(["ok", long])
    assert len(str(err.value)) < 500
    assert checked("name")(["a", "b"]) == ["a", "b"] and checked("name")(None) is None
