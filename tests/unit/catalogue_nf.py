"""Loads a catalogue NF's helper (catalogue/<nf>/files/<module>.py) the way its bundle runs
it: as a top-level module that imports `nfcommon` as a sibling. Here nfcommon comes from
catalogue/_shared, its one home, put on sys.path first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from netfate import catalogue

SHARED = Path(catalogue.__file__).parent / "_shared"


def load(nf: str, module: str) -> ModuleType:
    """The helper module `module` of NF `nf` (e.g. load("firewall", "fw")), loaded afresh."""
    if str(SHARED) not in sys.path:
        sys.path.insert(0, str(SHARED))
    path = catalogue.source_dir(nf) / "files" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"netfate_nf_{module}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod
