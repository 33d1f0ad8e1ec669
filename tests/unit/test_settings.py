"""The one settings object: NETFATE_* variables, flags on top, clear errors, no import-time
reads of the environment."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from netfate import paths
from netfate.errors import InvalidInput
from netfate.orchestrator.settings import Settings
from netfate.radius.settings import RadiusSettings
from netfate.settings import NetfateSettings, env_names, load_settings
from netfate.testbed.settings import TestbedSettings

# Every variable users and tests set before the settings object existed.
LEGACY = {
    ("paths", "run_dir"): "NETFATE_RUN_DIR",
    ("orchestrator", "state_dir"): "NETFATE_STATE_DIR",
    ("orchestrator", "db_url"): "NETFATE_DB_URL",
    ("orchestrator", "nats_url"): "NETFATE_NATS_URL",
    ("orchestrator", "host"): "NETFATE_HOST",
    ("orchestrator", "port"): "NETFATE_PORT",
    ("orchestrator", "command_timeout"): "NETFATE_COMMAND_TIMEOUT",
    ("orchestrator", "reconcile_interval"): "NETFATE_RECONCILE_INTERVAL",
    ("orchestrator", "node_timeout"): "NETFATE_NODE_TIMEOUT",
    ("orchestrator", "policy"): "NETFATE_POLICY",
    ("orchestrator", "user_idle_timeout"): "NETFATE_USER_IDLE_TIMEOUT",
    ("orchestrator", "reauth_lifetime"): "NETFATE_REAUTH_LIFETIME",
    ("orchestrator", "radius"): "NETFATE_RADIUS",
    ("orchestrator", "callback_networks"): "NETFATE_CALLBACK_NETWORKS",
    ("radius", "host"): "NETFATE_RADIUS_HOST",
    ("radius", "port"): "NETFATE_RADIUS_PORT",
    ("radius", "secret"): "NETFATE_RADIUS_SECRET",
    ("radius", "api_key"): "NETFATE_RADIUS_API_KEY",
    ("radius", "clients"): "NETFATE_RADIUS_CLIENTS",
    ("radius", "pool"): "NETFATE_RADIUS_POOL",
    ("radius", "max_failures"): "NETFATE_RADIUS_MAX_FAILURES",
    ("radius", "failure_window"): "NETFATE_RADIUS_FAILURE_WINDOW",
    ("radius", "backoff"): "NETFATE_RADIUS_BACKOFF",
    ("radius", "max_tracked"): "NETFATE_RADIUS_MAX_TRACKED",
    ("radius", "session_timeout"): "NETFATE_RADIUS_SESSION_TIMEOUT",
    ("radius", "reauth_lifetime"): "NETFATE_RADIUS_REAUTH_LIFETIME",
    ("radius", "reject_delay"): "NETFATE_RADIUS_REJECT_DELAY",
    ("radius", "api_timeout"): "NETFATE_RADIUS_API_TIMEOUT",
    ("testbed", "api_port"): "NETFATE_TESTBED_API_PORT",
    ("testbed", "nats_port"): "NETFATE_TESTBED_NATS_PORT",
    ("testbed", "of_port"): "NETFATE_TESTBED_OF_PORT",
    ("testbed", "idle_timeout"): "NETFATE_TESTBED_IDLE_TIMEOUT",
    ("testbed", "command_timeout"): "NETFATE_TESTBED_COMMAND_TIMEOUT",
    ("compute", "script_timeout"): "NETFATE_SCRIPT_TIMEOUT",
    ("client", "api"): "NETFATE_API",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in env_names().values():
        monkeypatch.delenv(var, raising=False)


def test_every_existing_variable_keeps_its_name_and_names_are_unique() -> None:
    names = env_names()
    for key, var in LEGACY.items():
        assert names[key] == var
    assert [v for v, n in Counter(names.values()).items() if n > 1] == []


def test_defaults_are_the_old_ones() -> None:
    s = load_settings()
    assert s.paths.run_dir == Path("/run/netfate")
    o = s.orchestrator
    assert (o.state_dir, o.db_url, o.nats_url, o.host, o.port) == (
        Path("/var/lib/netfate"), None, None, "127.0.0.1", 8181)
    assert (o.command_timeout, o.reconcile_interval, o.node_timeout, o.policy) == (
        15.0, 5.0, 10.0, "netfate")
    assert (o.user_idle_timeout, o.reauth_lifetime, o.radius) == (60, 3600.0, False)
    assert o.callback_networks == ("127.0.0.0/8", "::1/128")
    assert o.database_url == "sqlite:////var/lib/netfate/nfvi.db"
    r = s.radius
    assert (r.host, r.port, r.clients, r.pool, r.session_timeout) == (
        "127.0.0.1", 1812, ("127.0.0.1",), "10.90.100.0/22", None)
    assert (r.max_failures, r.failure_window, r.backoff, r.max_tracked) == (5, 60, 60, 10000)
    assert (r.reauth_lifetime, r.reject_delay, r.api_timeout) == (3600, 1, 5)
    t = s.testbed
    assert (t.api_port, t.nats_port, t.of_port, t.idle_timeout, t.command_timeout) == (
        8181, 4322, 6693, 30, 10.0)
    assert (t.reauth_lifetime, t.topology) == (3600.0, None)
    assert s.compute.script_timeout == 30.0
    assert s.client.api == "http://127.0.0.1:8181"
    # The groups alone (what library code and tests build) have the same defaults.
    assert Settings() == o.model_copy(update={"radius_settings": RadiusSettings()})
    assert TestbedSettings() == t


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RUN_DIR", "/tmp/fate-x")
    monkeypatch.setenv("NETFATE_PORT", "9999")
    monkeypatch.setenv("NETFATE_RADIUS", "1")
    monkeypatch.setenv("NETFATE_CALLBACK_NETWORKS", "10.0.0.0/8, ::1/128")
    monkeypatch.setenv("NETFATE_RADIUS_CLIENTS", "127.0.0.1, 10.90.0.0/16")
    monkeypatch.setenv("NETFATE_RADIUS_SESSION_TIMEOUT", "")  # empty: unset
    monkeypatch.setenv("NETFATE_TESTBED_IDLE_TIMEOUT", "4")
    monkeypatch.setenv("NETFATE_SCRIPT_TIMEOUT", "2.5")
    monkeypatch.setenv("NETFATE_API", "http://127.0.0.1:9999")
    s = load_settings()
    assert s.paths.run_dir == Path("/tmp/fate-x")
    assert (s.orchestrator.port, s.orchestrator.radius) == (9999, True)
    assert s.orchestrator.callback_networks == ("10.0.0.0/8", "::1/128")
    assert s.radius.clients == ("127.0.0.1", "10.90.0.0/16")
    assert s.radius.session_timeout is None
    assert s.orchestrator.radius_settings == s.radius  # the orchestrator's RADIUS is the group
    assert s.testbed.idle_timeout == 4
    assert s.compute.script_timeout == 2.5
    assert s.client.api == "http://127.0.0.1:9999"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_TESTBED_IDLE_TIMEOUT", "4")
    monkeypatch.setenv("NETFATE_TESTBED_API_PORT", "9000")
    monkeypatch.setenv("NETFATE_POLICY", "from-env")
    s = load_settings(testbed={"idle_timeout": 300, "api_port": None},
                      orchestrator={"policy": "from-flag"})
    assert s.testbed.idle_timeout == 300  # the flag
    assert s.testbed.api_port == 9000  # a flag left out (None): the variable
    assert s.testbed.api_url == "http://127.0.0.1:9000"
    assert s.orchestrator.policy == "from-flag"


@pytest.mark.parametrize(("var", "value", "words"), [
    ("NETFATE_RADIUS_PORT", "abc", ("NETFATE_RADIUS_PORT", "'abc'", "integer")),
    ("NETFATE_TESTBED_IDLE_TIMEOUT", "-1", ("NETFATE_TESTBED_IDLE_TIMEOUT", "greater")),
    ("NETFATE_PORT", "70000", ("NETFATE_PORT", "less than or equal")),
    ("NETFATE_CALLBACK_NETWORKS", "10.0.0.0/8,nowhere",
     ("NETFATE_CALLBACK_NETWORKS", "'nowhere' is not a network")),
    ("NETFATE_RADIUS", "maybe", ("NETFATE_RADIUS=", "boolean")),
    ("NETFATE_SCRIPT_TIMEOUT", "0", ("NETFATE_SCRIPT_TIMEOUT", "greater than 0")),
    ("NETFATE_SCRIPT_TIMEOUT", "inf", ("NETFATE_SCRIPT_TIMEOUT", "finite")),
    ("NETFATE_COMMAND_TIMEOUT", "1e400", ("NETFATE_COMMAND_TIMEOUT", "finite")),
    ("NETFATE_RADIUS_BACKOFF", "nan", ("NETFATE_RADIUS_BACKOFF", "finite")),
    ("NETFATE_RUN_DIR", "run/here", ("NETFATE_RUN_DIR", "not an absolute path")),
    ("NETFATE_RUN_DIR", "/tmp/" + "x" * 90, ("NETFATE_RUN_DIR", "longer than 80 bytes")),
    # `down` removes it (re-probe of 2026-12-06): '..' checked one directory and removed
    # another; FreeRADIUS refused spaces and quotes only once the testbed was half up
    ("NETFATE_RUN_DIR", "/tmp/p/new/..", ("NETFATE_RUN_DIR", "without '..'")),
    ("NETFATE_RUN_DIR", "/tmp/q\"uote dir", ("NETFATE_RUN_DIR", "letters, digits")),
    ("NETFATE_RUN_DIR", "/", ("NETFATE_RUN_DIR", "not '/'")),
    ("NETFATE_RUN_DIR", "//", ("NETFATE_RUN_DIR", "not '/'")),
    ("NETFATE_RUN_DIR", "//x", ("NETFATE_RUN_DIR", "not '/'")),
])
def test_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                               words: tuple[str, ...]) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInput) as e:
        load_settings()
    for w in words:
        assert w in str(e.value)


def test_bad_flag_is_named_as_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_TESTBED_OF_PORT", "0")
    with pytest.raises(InvalidInput) as e:
        load_settings(testbed={"api_port": 0})
    assert "testbed.api_port=0 (flag)" in str(e.value)
    assert "NETFATE_TESTBED_OF_PORT='0'" in str(e.value)  # every bad value at once


@pytest.mark.parametrize(("var", "meant"), [
    ("NETFATE_RUNDIR", "NETFATE_RUN_DIR"),
    ("NETFATE_DBURL", "NETFATE_DB_URL"),
    ("NETFATE_TESTBED_IDLE_TIMEOT", "NETFATE_TESTBED_IDLE_TIMEOUT"),
    ("NETFATE_RADIUS_SECERT", "NETFATE_RADIUS_SECRET"),
    ("NETFATE_SCRIPT_TIMEOUTS", "NETFATE_SCRIPT_TIMEOUT"),
])
def test_a_misspelt_variable_is_named_not_ignored(monkeypatch: pytest.MonkeyPatch, var: str,
                                                  meant: str) -> None:
    """A typo would leave the default in force without a word (new-user probe, 12-03)."""
    monkeypatch.setenv(var, "5")
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert f"{var} is not a setting (did you mean {meant}?)" in str(e.value)
    monkeypatch.setenv("NETFATE_SCRIPT_TIMEOUT", "0")  # named together with the bad value
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert var in str(e.value) and "NETFATE_SCRIPT_TIMEOUT='0'" in str(e.value)


def test_other_variables_with_the_prefix_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NETFATE_LEASE_FILE", "NETFATE_FOO", "NETFATE_ACCESS", "NETFATE_TESTBED"):
        monkeypatch.setenv(var, "x")
    load_settings()


@pytest.mark.parametrize(("var", "value", "words"), [
    ("NETFATE_RADIUS_PORT", "70000", "less than or equal to 65535"),
    ("NETFATE_RADIUS_ACCT_PORT", "0", "greater than or equal to 1"),
    ("NETFATE_RADIUS_HOST", "localhost", "'localhost' is not an IP address"),
    ("NETFATE_RADIUS_DAE_HOST", "::g", "is not an IP address"),
    ("NETFATE_RADIUS_CLIENTS", "127.0.0.1,nowhere", "'nowhere' is not an address or network"),
    ("NETFATE_RADIUS_ACCT_INTERIM_INTERVAL", "0.5", "0 (off) or 1-86400 seconds"),
    ("NETFATE_RADIUS_IDLE_TIMEOUT", "70000", "less than or equal to 65535"),
])
def test_radius_settings_are_checked_as_they_are_read(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: str) -> None:
    """Before, these passed the settings and failed when FreeRADIUS was configured, naming
    a field, not the variable (new-user probe, 12-03)."""
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert f"{var}={value!r}" in str(e.value) and words in str(e.value)


def test_a_bad_secret_is_named_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RADIUS_SECRET", "too short s3cret")
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert "NETFATE_RADIUS_SECRET (value hidden)" in str(e.value)
    assert "s3cret" not in str(e.value)
    with pytest.raises(InvalidInput) as e:
        load_settings(radius={"api_key": "flag s3cret"})
    assert "radius.api_key (flag, value hidden)" in str(e.value) and "s3cret" not in str(e.value)


def test_unknown_group_or_field_is_refused() -> None:
    with pytest.raises(InvalidInput, match="nosuch"):
        load_settings(testbed={"nosuch": 1})


def test_settings_built_after_import_see_the_environment_then(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is read at import: modules imported before the variable changes still follow
    the settings built after it."""
    from netfate.drivers import native
    from netfate.orchestrator.api import schemas
    from netfate.testbed import lifecycle

    for m in (native, schemas, lifecycle):
        importlib.reload(m)
    monkeypatch.setenv("NETFATE_TESTBED_API_PORT", "9181")
    monkeypatch.setenv("NETFATE_SCRIPT_TIMEOUT", "7")
    monkeypatch.setenv("NETFATE_CALLBACK_NETWORKS", "10.0.0.0/8")
    s = load_settings()
    assert lifecycle.api_url(s.testbed) == "http://127.0.0.1:9181"
    assert s.compute.script_timeout == 7
    assert schemas.callback_allowed("10.1.2.3", s.orchestrator.callback_networks)
    assert not schemas.callback_allowed("10.1.2.3")  # the default: loopback only
    # and the modules themselves did not pick the variables up
    assert native.SCRIPT_TIMEOUT == 30.0
    assert lifecycle.api_url(TestbedSettings()) == "http://127.0.0.1:8181"


def test_run_dir_is_configured_by_the_entry_point_not_read(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = paths.run_dir()
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path))
    assert paths.run_dir() == before  # the variable alone changes nothing
    try:
        paths.configure(load_settings().paths.run_dir)
        assert paths.ovs_dir() == tmp_path / "ovs"
    finally:
        paths.configure(before)


def test_no_module_reads_netfate_variables_at_import() -> None:
    """Importing every module with all variables set to nonsense raises nothing, and only
    the settings module (and the spawn helpers) mention os.environ."""
    env = {var: "#bad" for var in env_names().values()}
    code = ("import importlib, pkgutil, netfate\n"
            "skip = ('netfate.catalogue', 'netfate.db.migrations', 'netfate.cli.main')\n"
            "for m in pkgutil.walk_packages(netfate.__path__, 'netfate.'):\n"
            "    if not m.name.startswith(skip):\n"
            "        importlib.import_module(m.name)\n")
    r = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", **env},
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    src = Path(__file__).parents[2] / "src" / "netfate"
    readers = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                     if "catalogue" not in p.parts
                     and ("os.environ" in p.read_text() or "getenv" in p.read_text()))
    # settings.py reads; the others build a child process's environment (or PATH lookup).
    assert readers == ["access/dhcp_client.py", "bench/control_plane/procs.py",
                       "cluster/up.py", "drivers/capabilities.py", "drivers/ovs.py",
                       "proc.py", "settings.py", "testbed/processes.py"]


def test_the_settings_object_is_documented() -> None:
    for name, f in NetfateSettings.model_fields.items():
        model = f.annotation
        assert isinstance(model, type)
        for field_name, info in model.model_fields.items():  # type: ignore[attr-defined]
            assert info.description, f"{name}.{field_name} has no description"


def _fake_up(seen: dict[str, object]) -> object:
    def up(topo: object, progress: object, services: bool = True,
           settings: TestbedSettings | None = None) -> dict[str, object]:
        seen["topology"], seen["settings"] = topo, settings
        return {"up_seconds": 0.0}
    return up


def test_testbed_up_options_and_variables_reach_the_library_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from netfate.cli import testbed as cli_testbed
    from netfate.cli.main import app
    from netfate.testbed import lifecycle

    seen: dict[str, object] = {}
    monkeypatch.setattr(cli_testbed, "need_root", lambda: None)
    monkeypatch.setattr(lifecycle, "up", _fake_up(seen))
    monkeypatch.setenv("NETFATE_TESTBED_API_PORT", "9000")
    monkeypatch.setenv("NETFATE_TESTBED_IDLE_TIMEOUT", "4")
    r = CliRunner().invoke(app, ["testbed", "up", "--idle-timeout", "5",
                                 "--reauth-lifetime", "60", "--json"])
    assert r.exit_code == 0, r.output
    t = seen["settings"]
    assert isinstance(t, TestbedSettings)
    assert (t.idle_timeout, t.reauth_lifetime, t.api_port, t.of_port) == (5, 60, 9000, 6693)

    monkeypatch.setenv("NETFATE_TESTBED_IDLE_TIMEOUT", "soon")
    r = CliRunner().invoke(app, ["testbed", "up"])
    assert r.exit_code == 1
    assert "NETFATE_TESTBED_IDLE_TIMEOUT='soon'" in r.output.replace("\n", " ")


def test_an_api_token_with_blanks_is_trimmed_and_control_characters_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A token with a CR (read from a file) went into the Authorization header as it was;
    httpx's error then printed it whole (new-user probe, 2026-12-03)."""
    monkeypatch.setenv("NETFATE_API_TOKEN", " tok-0123456789abcdef\r\n")
    assert load_settings().orchestrator.api_token == "tok-0123456789abcdef"
    monkeypatch.setenv("NETFATE_API_TOKEN", "tok-01234\x0b56789")
    with pytest.raises(InvalidInput) as e:
        load_settings()
    assert "NETFATE_API_TOKEN (value hidden)" in str(e.value) and "tok-" not in str(e.value)
