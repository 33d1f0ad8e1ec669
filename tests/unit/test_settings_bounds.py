"""Settings are refused as they are read, in one line naming the variable (or flag), when
they would fail later: values past the bounds of the models they flow into (OpenFlow's
16-bit idle_timeout), RADIUS settings once checked only as the orchestrator started, and
checks of two fields that used to name the model (tester's report, 12-05)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from annotated_types import Le
from pydantic import BaseModel

from netfate.controller.model import Client, SwitchState
from netfate.errors import InvalidInput
from netfate.orchestrator.settings import Settings
from netfate.radius.settings import IDLE_TIMEOUT_MAX, RadiusSettings
from netfate.settings import ENV_PREFIX, SCRIPT_TIMEOUT_MAX, env_names, load_settings
from netfate.testbed.settings import TestbedSettings

HUGE = "99999999999999999999999"
# An error line that names a group or a model field where a variable should be.
_BY_MODEL = re.compile(rf"(^bad settings: |; )({'|'.join(ENV_PREFIX)})[:.]")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in env_names().values():
        monkeypatch.delenv(var, raising=False)


def _refused(**flags: Any) -> str:
    """The error of load_settings: one line, and with no flags no model names either (a
    flag is named group.field, as it is given)."""
    with pytest.raises(InvalidInput) as e:
        load_settings(**flags)
    msg = str(e.value)
    assert msg.startswith("bad settings: ") and "\n" not in msg, msg
    assert flags or not _BY_MODEL.search(msg), msg
    return msg


def _le(model: type[BaseModel], field: str) -> Any:
    return next(m.le for m in model.model_fields[field].metadata if isinstance(m, Le))


# -- 1. bounds of what the settings flow into ---------------------------------------------

@pytest.mark.parametrize("var", ["NETFATE_TESTBED_IDLE_TIMEOUT", "NETFATE_USER_IDLE_TIMEOUT",
                                 "NETFATE_RADIUS_IDLE_TIMEOUT"])
@pytest.mark.parametrize("value", [HUGE, "65536"])
def test_an_idle_timeout_past_openflows_16_bits_is_refused(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    """Accepted before: users then logged in with no connectivity, and only the
    orchestrator's log said why (the switch state refused them)."""
    monkeypatch.setenv(var, value)
    msg = _refused()
    assert f"{var}={value!r}" in msg and "less than or equal to 65535" in msg
    monkeypatch.setenv(var, "65535")
    load_settings()


def test_an_idle_timeout_flag_past_16_bits_is_refused() -> None:
    msg = _refused(testbed={"idle_timeout": int(HUGE)})
    assert f"testbed.idle_timeout={HUGE} (flag)" in msg and "65535" in msg
    msg = _refused(orchestrator={"user_idle_timeout": 65536})
    assert "orchestrator.user_idle_timeout=65536 (flag)" in msg


def test_the_settings_bounds_are_those_of_the_switch_state() -> None:
    """Each idle timeout ends up as a Client.idle_timeout; dhcp_pps as SwitchState's."""
    assert IDLE_TIMEOUT_MAX == _le(Client, "idle_timeout") == 65535
    for model, field in ((TestbedSettings, "idle_timeout"), (Settings, "user_idle_timeout"),
                         (RadiusSettings, "idle_timeout")):
        assert _le(model, field) == IDLE_TIMEOUT_MAX, (model, field)
    assert _le(Settings, "dhcp_pps") == _le(SwitchState, "dhcp_pps")
    Client(name="u", mac="02:00:00:00:00:01", port="p1", idle_timeout=IDLE_TIMEOUT_MAX)


def test_testbed_up_refuses_a_huge_idle_timeout_before_it_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from netfate.cli import testbed as cli_testbed
    from netfate.cli.main import app
    from netfate.testbed import lifecycle

    def up(*args: object, **kwargs: object) -> None:
        raise AssertionError("the testbed was brought up")

    monkeypatch.setattr(cli_testbed, "need_root", lambda: None)
    monkeypatch.setattr(lifecycle, "up", up)
    r = CliRunner().invoke(app, ["testbed", "up", "--idle-timeout", HUGE])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "testbed.idle_timeout" in out and "65535" in out, r.output
    monkeypatch.setenv("NETFATE_TESTBED_IDLE_TIMEOUT", HUGE)
    r = CliRunner().invoke(app, ["testbed", "up"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and f"NETFATE_TESTBED_IDLE_TIMEOUT='{HUGE}'" in out, r.output


def test_a_script_timeout_subprocess_cannot_wait_for_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 2**31-1 ms subprocess's poll() raised OverflowError in every lifecycle step."""
    monkeypatch.setenv("NETFATE_SCRIPT_TIMEOUT", "1e7")
    assert "NETFATE_SCRIPT_TIMEOUT='1e7'" in _refused()
    assert subprocess.run(["true"], timeout=SCRIPT_TIMEOUT_MAX, check=False).returncode == 0


# -- 2. RADIUS settings at load, not at the orchestrator's start ---------------------------

@pytest.mark.parametrize(("var", "value", "words"), [
    ("NETFATE_RADIUS_POOL", "abc", "is not a network"),
    ("NETFATE_RADIUS_POOL", "10.90.100.1/22", "is not a network"),  # host bits
    ("NETFATE_RADIUS_POOL", "10.90.100.0/31", "/30 or more"),
    ("NETFATE_RADIUS_POOL", "fd00::/64", "IPv4"),
    ("NETFATE_RADIUS_MAX_FAILURES", "0", "greater than or equal to 1"),
    ("NETFATE_RADIUS_MAX_FAILURES", "1001", "less than or equal to 1000"),
    ("NETFATE_RADIUS_FAILURE_WINDOW", "0", "greater than 0"),
    ("NETFATE_RADIUS_BACKOFF", "-1", "greater than or equal to 0"),
    ("NETFATE_RADIUS_BACKOFF", "1e300", "less than or equal to 86400"),  # Reply-Message
    ("NETFATE_RADIUS_MAX_TRACKED", "0", "greater than or equal to 1"),
    ("NETFATE_RADIUS_ACCOUNT_MAX_FAILURES", "0", "greater than or equal to 1"),
    ("NETFATE_RADIUS_ACCOUNT_FAILURE_WINDOW", "-5", "greater than 0"),
    ("NETFATE_RADIUS_ACCOUNT_BACKOFF", "-1", "greater than or equal to 0"),
    ("NETFATE_RADIUS_REAUTH_LIFETIME", "-1", "greater than or equal to 0"),
    ("NETFATE_RADIUS_CLIENTS", ",", "at least one"),
    ("NETFATE_RADIUS_ACCT_PORT", "1812", "the auth port too"),
])
def test_radius_settings_the_orchestrator_refused_at_start_are_refused_at_load(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: str) -> None:
    """Before, these passed and the orchestrator's start ended in a traceback naming the
    field (`radius pool 'abc' is not a network`)."""
    monkeypatch.setenv(var, value)
    msg = _refused()
    assert f"{var}={value!r}" in msg and words in msg, msg


def test_a_conflict_of_two_radius_settings_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RADIUS_PORT", "1813")  # the accounting port's default
    msg = _refused()
    assert "NETFATE_RADIUS_PORT='1813', NETFATE_RADIUS_ACCT_PORT (not set)" in msg
    monkeypatch.delenv("NETFATE_RADIUS_PORT")
    same = "secret-0123456789abcdef"
    monkeypatch.setenv("NETFATE_RADIUS_SECRET", same)
    monkeypatch.setenv("NETFATE_RADIUS_API_KEY", same)
    msg = _refused()
    assert "NETFATE_RADIUS_API_KEY (value hidden), NETFATE_RADIUS_SECRET (value hidden)" in msg
    assert same not in msg


def test_what_check_refuses_the_settings_refuse_too() -> None:
    """check() stays for copies (model_copy is not validated): it now also keeps the
    bounds the model sets, not only its own list."""
    good = RadiusSettings(secret="portal-secret-0123456789", api_key="api-key-0123456789abcd")
    good.check()
    for field, value in (("backoff", 1e300), ("max_tracked", 10**9), ("reauth_lifetime", -1.0),
                         ("acct_port", 1812)):
        with pytest.raises(InvalidInput, match=field):
            good.model_copy(update={field: value}).check()


def test_radius_pool_on_the_command_line_is_one_line_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from netfate.cli import testbed as cli_testbed
    from netfate.cli.main import app
    from netfate.testbed import lifecycle

    def up(*args: object, **kwargs: object) -> None:
        raise AssertionError("the testbed was brought up")

    monkeypatch.setattr(cli_testbed, "need_root", lambda: None)
    monkeypatch.setattr(lifecycle, "up", up)
    monkeypatch.setenv("NETFATE_RADIUS_POOL", "abc")
    r = CliRunner().invoke(app, ["testbed", "up"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "NETFATE_RADIUS_POOL='abc'" in out, r.output
    assert "Traceback" not in r.output


# -- 3. errors of two fields name the variables, not the model -----------------------------

@pytest.mark.parametrize(("env", "words"), [
    ({"NETFATE_PROBE_GATEWAY": "abc"}, ("NETFATE_PROBE_GATEWAY='abc'", "IPv4 address")),
    ({"NETFATE_PROBE_SUBNET": "abc"}, ("NETFATE_PROBE_SUBNET='abc'", "IPv4 network")),
    ({"NETFATE_PROBE_GATEWAY": "10.91.0.1"},
     ("NETFATE_PROBE_GATEWAY='10.91.0.1', NETFATE_PROBE_SUBNET (not set)", "not a host")),
    ({"NETFATE_PROBE_SUBNET": "10.1.0.0/16"},  # the gateway's default is outside it
     ("NETFATE_PROBE_SUBNET='10.1.0.0/16', NETFATE_PROBE_GATEWAY (not set)", "not a host")),
    ({"NETFATE_REPLICA_ID": "abc"},
     ("NETFATE_REPLICA_ID='abc', NETFATE_DB_URL (not set)", "PostgreSQL")),
    ({"NETFATE_REPLICA_ID": "r1", "NETFATE_DB_URL": "postgresql+psycopg://x@h/d"},
     ("NETFATE_REPLICA_ID='r1', NETFATE_NATS_URL (not set)", "shared NATS")),
    ({"NETFATE_REPLICA_ID": "r1", "NETFATE_DB_URL": "postgresql+psycopg://x@h/d",
      "NETFATE_NATS_URL": "nats://h:4222", "NETFATE_RADIUS": "1"},
     ("NETFATE_RADIUS='1', NETFATE_REPLICA_ID='r1'", "not supported with replica_id")),
    ({"NETFATE_REPLICA_ID": "R_1"}, ("NETFATE_REPLICA_ID='R_1'", "1-31 of a-z")),
])
def test_an_error_of_two_fields_names_their_variables(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: tuple[str, ...]) -> None:
    """Before: `bad settings: orchestrator: Value error, probe_gateway 'abc': ...`."""
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    msg = _refused()
    for w in words:
        assert w in msg, msg


def test_an_error_of_two_fields_names_a_flag_as_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_PROBE_SUBNET", "10.1.0.0/16")
    msg = _refused(orchestrator={"probe_gateway": "10.90.0.1"})
    assert "NETFATE_PROBE_SUBNET='10.1.0.0/16'" in msg
    assert "orchestrator.probe_gateway='10.90.0.1' (flag)" in msg


@pytest.mark.parametrize(("subnet", "gateway"), [
    ("", ""), ("", "10.1.0.1"), ("10.1.0.0/16", "10.1.255.254"), ("10.90.0.0/16", "10.90.0.1")])
def test_good_probe_settings_still_pass(subnet: str, gateway: str) -> None:
    s = Settings(probe_subnet=subnet, probe_gateway=gateway)
    assert (s.probe_subnet, s.probe_gateway) == (subnet, gateway)


@pytest.mark.parametrize(("model", "earlier", "later"), [
    (Settings, "db_url", "replica_id"), (Settings, "nats_url", "replica_id"),
    (Settings, "replica_id", "radius"), (Settings, "probe_subnet", "probe_gateway"),
    (RadiusSettings, "port", "acct_port"), (RadiusSettings, "secret", "api_key"),
])
def test_a_check_of_two_fields_sits_on_the_later_one(
        model: type[BaseModel], earlier: str, later: str) -> None:
    """The validator of `later` reads `earlier` from info.data: only there if declared
    before it. Reordering the fields would silently turn the check off."""
    names = list(model.model_fields)
    assert names.index(earlier) < names.index(later)


def test_an_unrelated_command_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Any) -> None:
    """`NETFATE_PROBE_GATEWAY=abc netfate images list` said `orchestrator: Value error,
    probe_gateway 'abc'`: it still stops (every command reads the whole settings), now
    naming the variable."""
    from typer.testing import CliRunner

    from netfate.cli.main import app

    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NETFATE_PROBE_GATEWAY", "abc")
    r = CliRunner().invoke(app, ["images", "list"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "NETFATE_PROBE_GATEWAY='abc'" in out, r.output
    assert "orchestrator:" not in out


# -- ports that clash (re-probe of 2026-12-06) ---------------------------------------------

@pytest.mark.parametrize(("env", "words"), [
    ({"NETFATE_TESTBED_OF_PORT": "4322"}, ("NETFATE_TESTBED_OF_PORT", "nats_port")),
    ({"NETFATE_TESTBED_API_PORT": "4322"}, ("NETFATE_TESTBED_NATS_PORT", "api_port")),
    ({"NETFATE_TESTBED_METRICS_PORT": "8180"}, ("NETFATE_TESTBED_METRICS_PORT", "8181")),
    ({"NETFATE_RADIUS_DAE_PORT": "1812"}, ("NETFATE_RADIUS_DAE_PORT", "port")),
    ({"NETFATE_RADIUS_DAE_PORT": "1813"}, ("NETFATE_RADIUS_DAE_PORT", "acct_port")),
])
def test_ports_that_clash_are_refused_at_load(monkeypatch: pytest.MonkeyPatch,
                                              env: dict[str, str],
                                              words: tuple[str, ...]) -> None:
    """--of-port on the bus's port failed 38 s into `up`; agents' metrics on the API's port
    reported success; the DAE server on FreeRADIUS's auth port was taken at load."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    msg = _refused()
    assert all(w in msg for w in words), msg


def test_the_metrics_window_covers_every_node_a_topology_may_have() -> None:
    from netfate.testbed import settings as tb_settings
    from netfate.testbed import topology

    assert tb_settings.MAX_NODES == topology.MAX_NODES
    load_settings()  # the defaults are apart


@pytest.mark.parametrize(("var", "value", "words"), [
    ("NETFATE_HOST", "0.0.0.0 ; x", ("NETFATE_HOST", "neither an IP address nor a host name")),
    ("NETFATE_HOST", "-bad", ("NETFATE_HOST", "host name")),
    ("NETFATE_STATE_DIR", "relative", ("NETFATE_STATE_DIR", "not an absolute path")),
])
def test_the_orchestrators_host_and_state_dir_are_checked_at_load(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: tuple[str, ...]) -> None:
    monkeypatch.setenv(var, value)
    msg = _refused()
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0", "localhost", "api.example"])
def test_good_listen_hosts_pass(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("NETFATE_HOST", host)
    load_settings()
