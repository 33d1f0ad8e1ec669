"""The NFs' shared helpers (catalogue/_shared/nfcommon.py): the state document format, value
checks, the command dispatch, notifications, and that every bundle carries them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from netfate import catalogue
from tests.unit.catalogue_nf import load

fw = load("firewall", "fw")
nf = fw.nf


def test_state_document_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "state.json"
    nf.write_state_doc(str(out), "firewall", {"rules": []}, conntrack=["-A x"])
    doc = json.loads(out.read_text())
    assert doc == {"format": "netfate-state/1", "nf": "firewall", "config": {"rules": []},
                   "conntrack": ["-A x"]}
    assert nf.read_state_doc(str(out), "firewall") == doc


@pytest.mark.parametrize(("doc", "message"), [
    ({"format": "other/1", "nf": "firewall", "config": {}}, "not a netfate-state/1 document"),
    ({"format": "netfate-state/1", "nf": "rate-limiter", "config": {}},
     "state of NF 'rate-limiter', expected 'firewall'"),
    ({"format": "netfate-state/1", "nf": "firewall", "config": []}, "has no config object"),
    ([1], "not a netfate-state/1 document"),
])
def test_foreign_state_documents_die(doc: Any, message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SystemExit):
        nf.read_state_doc(str(path), "firewall")
    assert message in capsys.readouterr().err


def test_die_names_the_nf_and_action(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NF_NAME", "firewall")
    monkeypatch.setenv("NF_ACTION", "update")
    with pytest.raises(SystemExit) as exc:
        nf.die("boom", 3)
    assert exc.value.code == 3
    assert capsys.readouterr().err == "error: [firewall/update] boom\n"


def test_int_in_range() -> None:
    assert nf.int_in({}, "n", 5, 1, 9) == 5
    assert nf.int_in({"n": 9}, "n", 5, 1, 9) == 9
    for bad in (0, 10, True, 2.0, "3"):
        with pytest.raises(SystemExit):
            nf.int_in({"n": bad}, "n", 5, 1, 9, "request")


def test_main_runs_the_command_with_as_many_arguments_as_it_takes(
        capsys: pytest.CaptureFixture[str]) -> None:
    got: list[tuple[str, ...]] = []

    def cmd_run(a: str, b: str = "-") -> None:
        got.append((a, b))

    helper = {"cmd_run": cmd_run, "run": None}
    doc = "A helper.\n\nUsage: x.py run A [B]\nMore text.\n"
    nf.main(["run", "a"], helper, doc)
    nf.main(["run", "a", "b"], helper, doc)
    assert got == [("a", "-"), ("a", "b")]
    for argv in ([], ["run"], ["run", "a", "b", "c"], ["walk"], ["_run"]):
        with pytest.raises(SystemExit) as exc:
            nf.main(argv, helper, doc)
        assert exc.value.code == 2
        assert capsys.readouterr().err.endswith("usage: x.py run A [B]\n")


@pytest.mark.parametrize(("nf_name", "module", "commands"), [
    ("firewall", "fw", "apply check render status flush export import"),
    ("rate-limiter", "rl", "apply check render clear status export import"),
    ("packet-inspector", "inspector", "daemon check status export import"),
    ("troubleshooter", "ts", "check addr submit run status export import"),
    ("content-filter", "cf", "check render daemon queue status export import"),
    ("nat", "nat", "check render l3 status export import"),
    ("nat", "arpd", "daemon"),
    ("load-balancer", "lb", "check render l3 status export import"),
])
def test_every_command_the_usage_names_exists(nf_name: str, module: str,
                                              commands: str) -> None:
    helper = load(nf_name, module)
    usage = next(ln for ln in helper.__doc__.splitlines() if ln.startswith("Usage:"))
    named = [part.split()[0] for part in usage.split(" ", 2)[2].split(" | ")]
    assert named == commands.split()
    assert all(callable(getattr(helper, f"cmd_{c}")) for c in named)


def test_port_stats_from_ip_json() -> None:
    links = {"lan": {"flags": ["BROADCAST", "UP"], "operstate": "UP",
                     "stats64": {"rx": {"packets": 1, "bytes": 60, "dropped": 0},
                                 "tx": {"packets": 2, "bytes": 120, "dropped": 1}}},
             "br0": {"flags": ["UP"]}}
    st = nf.port_stats(["lan", "wan"], links)
    assert st["wan"] == {"present": False}
    assert st["lan"]["up"] is True and st["lan"]["tx_dropped"] == 1
    assert nf.forwarding(links) is True
    assert nf.forwarding({"br0": {"flags": []}}) is False


def test_notifications_are_renamed_into_new(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NF_NOTIFY_DIR", raising=False)
    assert nf.notify("flood", "critical", "x", {}) is None  # no queue: nothing to do
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    monkeypatch.setenv("NF_NOTIFY_DIR", str(tmp_path))
    monkeypatch.setenv("NF_ID", "n1")
    monkeypatch.setenv("NF_NAME", "packet-inspector")
    name = nf.notify("flood", "critical", "192.0.2.9", {"pps": 1})
    assert name is not None and not list((tmp_path / "tmp").iterdir())
    doc = json.loads((tmp_path / "new" / name).read_text())
    assert doc["nf_id"] == "n1" and doc["type"] == "flood" and doc["detail"] == {"pps": 1}


def test_nft_texts_replace_tables_first_then_mark_frames_in_bridge_prerouting() -> None:
    assert nf.nft_replace("bridge b", "inet i") == [
        "table bridge b", "delete table bridge b", "table inet i", "delete table inet i"]
    marks = nf.nft_port_marks("l0", "w0", 0x1, 0x2)
    assert nf.nft_bridge_prerouting("b", marks, "\tchain more {", "\t}") == [
        "table bridge b {", "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority -300; policy accept;",
        '\t\tiifname "l0" meta mark set 0x1', '\t\tiifname "w0" meta mark set 0x2',
        "\t}", "\tchain more {", "\t}", "}"]


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_every_bundle_carries_the_one_copy_of_the_shared_helpers(name: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(catalogue.bundle_bytes(name)), mode="r:gz") as tar:
        for shared in catalogue.SHARED:
            member = tar.extractfile(f"files/{shared}")
            assert member is not None
            assert member.read() == (catalogue.source_dir(name).parent / "_shared" /
                                     shared).read_bytes()
        assert not [m for m in tar.getnames() if "__pycache__" in m]
