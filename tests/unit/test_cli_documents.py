"""JSON documents and files given to `netfate nf` and the API client commands (--config, a
state document, a bundle path): refused with one line naming what is wrong, exit code 1,
before anything is done: no traceback, no hang on a fifo or /dev/zero."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netfate.cli.main import app


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NETFATE_API", "http://127.0.0.1:9")  # never reached


def _deep(tmp_path: Path) -> str:
    (tmp_path / "deep.json").write_text("[" * 100_000)
    return f"@{tmp_path / 'deep.json'}"


BAD_CONFIGS = [
    ("{bad", "not valid JSON"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1e309}', "1e309 is beyond the range"),
    ("[1]", "must be a JSON object"),
    ('{"rules": [], "rules": [{"action": "deny"}]}', "'rules' is given twice"),
    ('{"a": {"b": 1, "b": 2}}', "'b' is given twice"),
    ("@/dev/zero", "not a regular file"),
    ("@/", "not a regular file"),
    ("@/nonexistent/x.json", "No such file"),
]


@pytest.mark.parametrize(("config", "words"), BAD_CONFIGS)
@pytest.mark.parametrize("command", [
    ["nf", "deploy", "n1", "alice", "firewall", "--config"],
    ["nf", "update", "n1", "i1"],
    ["nfs", "instantiate", "firewall", "alice", "n1", "--config"],
    ["nfs", "update", "0" * 8],
    ["nfs", "update", "0" * 8, "--config"],
    ["users", "add", "bob", "--password", "x", "--config"],
])
def test_bad_config_is_one_line_and_exit_1(command: list[str], config: str, words: str) -> None:
    r = CliRunner().invoke(app, [*command, config])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert words in " ".join(r.output.split()) and "Traceback" not in r.output


def test_a_config_nested_too_deeply_or_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for config, words in ((_deep(tmp_path), "nested too deeply"),
                          (f"@{tmp_path / 'fifo'}", "not a regular file")):
        r = CliRunner().invoke(app, ["nf", "deploy", "n1", "alice", "firewall", "--config",
                                     config])
        assert r.exit_code == 1 and words in " ".join(r.output.split()), r.output


@pytest.mark.parametrize(("command", "words"), [
    (["nf", "bundle-add", "/dev/zero"], "not a regular file"),
    (["nf", "bundle-add", "/"], "not a regular file"),
    (["nf", "import-state", "n1", "i1", "/dev/zero"], "not a regular file"),
])
def test_files_that_are_not_regular_are_refused(command: list[str], words: str) -> None:
    r = CliRunner().invoke(app, command)
    assert r.exit_code == 1 and words in " ".join(r.output.split()), r.output


def test_an_error_is_printed_as_its_words_not_as_rich_markup(
        capsys: pytest.CaptureFixture[str]) -> None:
    """'^[a-z0-9][a-z0-9_.-]{0,31}$' was printed as '^{0,31}$': rich took the brackets for
    styles (new-user probe, 2026-12-03)."""
    import typer

    from netfate.cli.common import guarded
    from netfate.errors import InvalidInput

    def bad() -> None:
        raise InvalidInput("name: String should match pattern '^[a-z0-9][a-z0-9_.-]{0,31}$' "
                           "[red]not red[/]")

    with pytest.raises(typer.Exit):
        guarded(bad)
    out = capsys.readouterr()
    assert "'^[a-z0-9][a-z0-9_.-]{0,31}$' [red]not red[/]" in (out.out + out.err).replace(
        "\n", "")


def test_users_add_takes_the_password_from_stdin_not_the_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A password given with --password shows in ps and the shell's history (new-user
    probe, 2026-12-03): --password-stdin reads it as `docker login` does, or it is asked."""
    from netfate.cli import client

    sent: list[dict[str, object]] = []
    monkeypatch.setattr(client, "call", lambda method, path, json: sent.append(json) or {})
    r = CliRunner().invoke(app, ["users", "add", "bob", "--password-stdin"],
                           input="s3cret pass\nignored\n")
    assert r.exit_code == 0, r.output
    assert sent[-1]["password"] == "s3cret pass"
    r = CliRunner().invoke(app, ["users", "add", "bob"], input="asked1\nasked1\n")
    assert r.exit_code == 0 and sent[-1]["password"] == "asked1", r.output
    for argv, stdin, words in (
            (["--password", "x", "--password-stdin"], "y\n", "not both"),
            (["--password-stdin"], "", "first line of stdin"),
            (["--password-stdin"], "x" * 2000 + "\n", "1-128 bytes"),
            (["--password-stdin"], "ä" * 65 + "\n", "1-128 bytes"),
            ([], "", "no password given")):  # (new-user probe: GetPassWarning, then Aborted.)
        n = len(sent)
        r = CliRunner().invoke(app, ["users", "add", "bob", *argv], input=stdin)
        assert r.exit_code == 1 and words in " ".join(r.output.split()), r.output
        assert len(sent) == n  # nothing sent


@pytest.mark.parametrize("argv", [
    ["ops", "show", "../users/c1?x="],
    ["ops", "show", ""],
    ["nodes", "down", "../users/c1"],
    ["nodes", "down", "cpe1#x"],
    ["users", "delete", "a/b"],
    ["nfs", "terminate", "..", "--no-wait"],
    ["nfs", "terminate", "i%2e%2e"],
])
def test_a_name_or_id_cannot_change_which_resource_is_meant(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`netfate ops show '../users/c1?x='` printed user c1, `nodes down ../users/c1` sent
    PATCH /users/c1 (new-user probe, 2026-12-03): each segment is a plain name or id."""
    import httpx

    def never(*a: object, **k: object) -> None:
        raise AssertionError(f"a request was sent: {a}")

    monkeypatch.setattr(httpx, "request", never)
    r = CliRunner().invoke(app, argv)
    assert r.exit_code in (1, 2), r.output
    assert "Traceback" not in r.output and "AssertionError" not in repr(r.exception)


def test_a_password_on_stdin_that_is_not_utf8_is_one_line() -> None:
    r = CliRunner().invoke(app, ["users", "add", "c2", "--password-stdin"],
                           input=b"\xff\xfeabcd\n")
    assert r.exit_code == 1 and "not UTF-8" in r.output, r.output


def test_nfs_update_takes_the_config_as_an_argument_or_as_config_but_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`nfs instantiate` takes --config, `nfs update` took only a positional CONFIG (new-user
    probe, 2026-12-05): both forms work, and giving both or neither is one clear line."""
    from netfate.cli import client

    sent: list[object] = []
    monkeypatch.setattr(client, "call", lambda method, path, json: sent.append(json) or
                        {"vnf_lcm_op_occs": []})
    for argv in (['{"a": 1}'], ["--config", '{"a": 1}']):
        r = CliRunner().invoke(app, ["nfs", "update", "i1", *argv, "--no-wait"])
        assert r.exit_code == 0, r.output
        assert sent[-1] == {"config": {"a": 1}}
    for argv in (['{"a": 1}', "--config", '{"a": 2}'], []):
        n = len(sent)
        r = CliRunner().invoke(app, ["nfs", "update", "i1", *argv])
        assert r.exit_code == 1 and "CONFIG or --config" in r.output, r.output
        assert len(sent) == n
