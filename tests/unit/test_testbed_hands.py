"""The testbed by hand, pure parts: which processes to revive, hosts where a move left them,
the exec argument list, the shell's parsing and completion, the status tree."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from netfate.cli.testbed_shell import TestbedShell, complete_word, parse
from netfate.cli.testbed_tree import status_tree
from netfate.errors import InvalidInput
from netfate.testbed import hands, hosts, revive
from netfate.testbed.topology import load_topology

TOPO = load_topology()
NAMES = revive.expected(TOPO)
ALL_CHILDREN = {"nats-server": True, "freeradius": True}


def test_expected_processes_in_start_order() -> None:
    assert NAMES[:2] == ["orchestrator", "controller"]
    assert {"access-cpe1", "access-cpe2", "agent-core", "agent-dc", "agent-cpe1",
            "agent-cpe2"} == set(NAMES[2:])
    assert "access-core" not in NAMES  # access services run on CPEs only
    assert max(NAMES.index(n) for n in NAMES if n.startswith("access-")) < min(
        NAMES.index(n) for n in NAMES if n.startswith("agent-"))


def test_plan_keeps_running_and_starts_dead() -> None:
    running = dict.fromkeys(NAMES, True) | {"controller": False, "agent-cpe2": False}
    p = revive.plan(NAMES, running, ALL_CHILDREN)
    assert p.start == ["controller", "agent-cpe2"]
    assert p.stop == [] and p.cleanup == []
    assert set(p.keep) == set(NAMES) - {"controller", "agent-cpe2"}


def test_plan_fresh_testbed_starts_everything_in_order() -> None:
    p = revive.plan(NAMES, {}, {})
    assert p.start == NAMES and p.keep == [] and p.stop == []
    assert p.cleanup == ["access-cpe1", "access-cpe2"]


def test_plan_restarts_orchestrator_whose_child_died() -> None:
    running = dict.fromkeys(NAMES, True)
    p = revive.plan(NAMES, running, {"nats-server": False, "freeradius": True})
    assert p.stop == ["orchestrator"] and p.start == ["orchestrator"]
    assert "orchestrator" not in p.keep


def test_plan_cleans_up_dead_access_services_before_starting_them() -> None:
    running = dict.fromkeys(NAMES, True) | {"access-cpe1": False}
    p = revive.plan(NAMES, running, ALL_CHILDREN)
    assert p.cleanup == ["access-cpe1"] and p.start == ["access-cpe1"]


def _state(**attach: str) -> dict[str, object]:
    hs = tuple(h.model_copy(update={"attach": attach.get(h.name, h.attach)})
               for h in TOPO.hosts)
    return {"topology": TOPO.model_copy(update={"hosts": hs}).model_dump(mode="json")}


def test_as_moved_keeps_a_roamed_client_where_it_is() -> None:
    moved = hosts.as_moved(TOPO, _state(client1="cpe2"))
    assert moved.host("client1").attach == "cpe2"
    assert moved.host("client2").attach == "cpe2"
    assert moved.host("inet").attach == "core"
    assert TOPO.host("client1").attach == "cpe1"  # the file's topology is not changed


def test_as_moved_ignores_unknown_nodes_and_bad_state() -> None:
    assert hosts.as_moved(TOPO, _state(client1="cpe9")) == TOPO
    assert hosts.as_moved(TOPO, {"topology": {"name": ""}}) == TOPO
    assert hosts.as_moved(TOPO, {}) == TOPO


def test_stale_ports_are_the_clients_ports_on_other_cpes() -> None:
    assert hosts.stale_ports(TOPO, TOPO.host("client1")) == [
        ("fate-cpe2", TOPO.host_port(TOPO.host("client1").model_copy(
            update={"attach": "cpe2"})))]
    assert hosts.stale_ports(TOPO, TOPO.host("inet")) == []


def test_port_ids() -> None:
    c1 = TOPO.host("client1")
    assert hosts.port_ids(TOPO, c1) == {"netfate-kind": "access",
                                        "attached-mac": c1.default_mac()}
    assert hosts.port_ids(TOPO, TOPO.host("inet")) == {"netfate-kind": "infra"}


def test_host_argv_is_nsenter_with_the_argument_list() -> None:
    argv = hands.host_argv(TOPO, "client1", ["ping", "-c1", "a b; rm"])
    assert argv[0] == "nsenter" and argv[1].endswith("/fate-h-client1")
    assert argv[-3:] == ["ping", "-c1", "a b; rm"]  # no shell: one argument stays one


def test_host_argv_refuses_unknown_hosts_naming_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown host 'h9'.*inet.*client1"):
        hands.host_argv(TOPO, "h9", ["true"])
    with pytest.raises(InvalidInput, match="no command"):
        hands.host_argv(TOPO, "client1", [])


def test_exit_code_convention() -> None:
    assert hands.exit_code(0) == 0
    assert hands.exit_code(3) == 3
    assert hands.exit_code(-9) == 137


def test_shell_parse_and_complete() -> None:
    assert parse("client1 ping -c1 '10.255.0.1'") == ["client1", "ping", "-c1", "10.255.0.1"]
    with pytest.raises(InvalidInput):
        parse("exec 'unbalanced")
    assert complete_word("cl", ["inet", "client2", "client1"]) == ["client1", "client2"]


def test_shell_completes_clients_then_cpes(monkeypatch: pytest.MonkeyPatch) -> None:
    sh = TestbedShell()
    monkeypatch.setattr(sh, "_topo", lambda: TOPO)
    assert sh.complete_move("c", "move c", 5, 6) == ["client1", "client2"]
    assert sh.complete_move("c", "move client1 c", 13, 14) == ["core", "cpe1", "cpe2"][1:]
    assert sh.complete_exec("i", "exec i", 5, 6) == ["inet"]
    assert "exec" in sh.completenames("ex") and "client1" in sh.completenames("cli")


def test_shell_exec_takes_a_double_dash_as_testbed_exec_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(new-user probe, 2026-12-05) `exec client1 -- true` ran `--`."""
    from netfate.testbed import hands

    ran: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(hands, "run_on", lambda host, argv: ran.append((host, argv)) or 0)
    sh = TestbedShell()
    sh.do_exec("client1 -- true")
    sh.do_exec("client1 ip a")
    sh.do_exec("client1 --")  # nothing to run: the usage, not nsenter's error
    assert ran == [("client1", ["true"]), ("client1", ["ip", "a"])]


def _status() -> dict[str, object]:
    return {
        "up": True, "topology": "netfate-poc", "api": "http://127.0.0.1:8181",
        "bridges": {n.lsi: {"node": n.name, "role": n.role, "ports": {f"p-{n.name}": 1}}
                    for n in TOPO.nodes},
        "links": [{"a": f"{n.name}:x", "b": f"{n.uplink}:y", "kind": "patch"}
                  for n in TOPO.nodes if n.uplink],
        "hosts": [{"name": h.name, "role": h.role, "node": h.attach, "address": "10.90.1.1",
                   "mac": h.default_mac(), "present": True} for h in TOPO.hosts],
        "nfs": [{"instance_id": "cpe1-user1-firewall", "node": "cpe1", "owner": "user1",
                 "name": "firewall", "state": "running", "flavour": "native"}],
        "users": [{"name": "user1", "access_node": "cpe1", "ip": "10.90.100.7",
                   "mac": TOPO.host("client1").default_mac()}],
        "processes": {"controller": {"pid": 42, "alive": False}},
    }


def test_status_tree_nests_nodes_by_uplink_with_hosts_users_and_nfs() -> None:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(status_tree(_status()))
    text = out.getvalue()
    lines = text.splitlines()

    def depth(word: str) -> int:
        line = next(x for x in lines if word in x)
        return len(line) - len(line.lstrip(" │├└─"))

    assert "PE core" in text and "CPE cpe1" in text and "DC dc" in text
    assert depth("PE core") < depth("CPE cpe1") < depth("client1")
    assert "user user1 (10.90.100.7)" in text
    assert "NF firewall cpe1-user1-firewall (native) of user1: running" in text
    assert "controller PID 42: dead" in text
    # user1 is where client1 is: on cpe1's branch, not cpe2's
    assert text.index("CPE cpe1") < text.index("user1") < text.index("CPE cpe2")


def test_the_shells_down_and_status_take_no_arguments(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """`down extra` tore the testbed down (third probe of 2026-12-06)."""
    from netfate.testbed import lifecycle

    called: list[str] = []
    monkeypatch.setattr(lifecycle, "down", lambda *a, **k: called.append("down"))
    shell = TestbedShell()
    shell.onecmd("down extra")
    shell.onecmd("status nonsense")
    assert called == []
    out = capsys.readouterr()
    assert "down takes no arguments" in out.out + out.err
    assert "status takes no arguments" in out.out + out.err
