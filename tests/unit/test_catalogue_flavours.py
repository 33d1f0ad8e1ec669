"""Every flavour a catalogue NF's descriptor declares has what that flavour needs to run its
scripts: the container image builder knows each tool its capabilities name, and the VM guest
(netfate.drivers.vm_image) carries every command its Python helpers run and every stdlib module
they import (the guest's Python is trimmed: a helper importing, say, tempfile broke every VM
firewall once)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netfate import catalogue
from netfate.descriptor import parse_descriptor
from netfate.drivers import capabilities, vm_image

CAT = Path(catalogue.__file__).parent
NFS = sorted(p.parent.name for p in CAT.glob("*/descriptor.yaml"))


def flavours(nf: str) -> tuple[str, ...]:
    data = yaml.safe_load((CAT / nf / "descriptor.yaml").read_text())
    return parse_descriptor(data, nf).flavours


def helpers(nf: str) -> list[Path]:
    """The Python files the NF's bundle ships: its own and the shared ones."""
    shared = [CAT / "_shared" / f for f in (*catalogue.SHARED, *catalogue.EXTRAS.get(nf, ()))]
    borrowed = [catalogue.source_dir(src) / "files" / f
                for src, f in catalogue.BORROWED.get(nf, {}).values()]
    return sorted({*(CAT / nf / "files").glob("*.py"),
                   *(p for p in (*shared, *borrowed) if p.suffix == ".py")})


def imports(files: list[Path]) -> set[str]:
    local = {f.stem for f in files}
    out: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    return {m for m in out if m not in local and m not in ("netfate", "__future__")}


def commands(files: list[Path]) -> set[str]:
    """argv[0] of every literal argument list the helpers run (run([...]), Popen([...])),
    the argv[0] a name that a loop takes from a tuple of strings included."""
    out: set[str] = set()
    for f in files:
        tree = ast.parse(f.read_text())
        loops: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name) \
                    and isinstance(node.iter, ast.Tuple | ast.List):
                loops.setdefault(node.target.id, set()).update(
                    e.value for e in node.iter.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args
                    and isinstance(node.args[0], ast.List) and node.args[0].elts):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            first = node.args[0].elts[0]
            if name.lstrip("_") not in ("run", "Popen", "check_output", "call"):
                continue
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.add(first.value)
            elif isinstance(first, ast.Name):
                out |= loops.get(first.id, set())
    return out


def test_the_catalogue_ships_the_vm_flavour_for_the_nfs_whose_guest_has_their_tools() -> None:
    vm = {nf for nf in NFS if "vm" in flavours(nf)}
    assert {"firewall", "content-filter", "nat", "load-balancer", "vpn"} <= vm


@pytest.mark.parametrize("nf", NFS)
def test_a_container_flavour_has_a_tool_for_each_package_capability(nf: str) -> None:
    if "container" not in flavours(nf):
        pytest.skip(f"{nf} ships no container flavour")
    data = yaml.safe_load((CAT / nf / "descriptor.yaml").read_text())
    caps = parse_descriptor(data, nf).dependencies.capability
    for cap in caps:
        if cap.type == "package" and cap.name != "bridge":  # bridge: br_netfilter, a module
            assert cap.name in capabilities.TOOLS, f"{nf}: no tool known for {cap.name}"


@pytest.fixture(scope="module")
def guest_stdlib() -> set[str]:
    if not Path(vm_image.TOOLS[3]).is_file():
        pytest.skip("python3.11 is not installed")
    return vm_image.python_stdlib()


@pytest.mark.parametrize("nf", NFS)
def test_a_vm_flavour_has_its_helpers_commands_and_stdlib_modules_in_the_guest(
        nf: str, guest_stdlib: set[str]) -> None:
    if "vm" not in flavours(nf):
        pytest.skip(f"{nf} ships no VM flavour")
    files = helpers(nf)
    missing = {m for m in imports(files)
               if m not in sys.builtin_module_names and m not in guest_stdlib}
    assert not missing, f"{nf} imports {sorted(missing)}, which the VM guest's Python lacks"
    have = vm_image.executables() | busybox_applets()
    absent = commands(files) - have
    assert not absent, f"{nf} runs {sorted(absent)}, which the VM guest does not carry"
    data = yaml.safe_load((CAT / nf / "descriptor.yaml").read_text())
    for cap in parse_descriptor(data, nf).dependencies.capability:
        if cap.type != "package":
            continue
        if cap.name == "bridge":
            assert "br_netfilter" in vm_image.MODULES
            continue
        tool = capabilities.TOOLS.get(cap.name)
        exes = {tool} if isinstance(tool, str) else set(tool or ())
        assert exes & have, f"{nf} needs {cap.name}, which the VM guest does not carry"


def busybox_applets() -> set[str]:
    if not Path(vm_image.BUSYBOX).is_file() or shutil.which("true") is None:
        return set()
    out = subprocess.run([vm_image.BUSYBOX, "--list"], capture_output=True, text=True,
                         check=False).stdout
    return set(out.split())


def test_the_guest_helpers_scan_includes_the_shared_modules() -> None:
    """vm_image finds the stdlib the guest needs from files/*.py and _shared/*.py (ctstate.py
    and nfcommon.py are shipped beside every NF's helpers)."""
    mods = imports(sorted((CAT / "_shared").glob("*.py")))
    assert mods and mods <= vm_image.python_stdlib() | set(sys.builtin_module_names)
