"""GET /api/v1/vnf_packages shows each NF's implementations (flavours with what each needs),
and the NNF paper's Fig. 3 template, as printed, uploads as a package."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.harness import one_node
from tests.unit.hostile_docs import bundle

API = "/api/v1"
GZ = {"Content-Type": "application/gzip"}
FIG3 = (Path(__file__).parent.parent / "fixtures" / "nnf-fig3-firewall.template").read_bytes()
MULTI = {"name": "shaper", "flavours": ["native", "container", "vm"],
         "resources": {"memory-mb": 16},
         "implementations": {"container": {"memory-mb": 24, "disk-mb": 8},
                             "vm": {"memory-mb": 256, "disk-mb": 600}}}


def test_packages_list_their_implementations(tmp_path_factory: pytest.TempPathFactory) -> None:
    with one_node(tmp_path_factory.mktemp("flavours")) as (_, c):
        r = c.post(f"{API}/vnf_packages", content=bundle(FIG3), headers=GZ)
        assert r.status_code == 201, r.text
        fig3 = r.json()
        assert fig3["implementations"] == [
            {"flavour": "native", "memory-mb": 32, "cpu-percent": 100, "disk-mb": 0}]
        assert fig3["descriptor"]["uri"] == "http://repo/native/firewall.tgz"
        r = c.post(f"{API}/vnf_packages", content=bundle(MULTI), headers=GZ)
        assert r.status_code == 201, r.text
        listed = {p["name"]: p for p in c.get(f"{API}/vnf_packages").json()}
        assert [(i["flavour"], i["memory-mb"], i["disk-mb"])
                for i in listed["shaper"]["implementations"]] == [
            ("native", 16, 0), ("container", 24, 8), ("vm", 256, 600)]
        one = c.get(f"{API}/vnf_packages/{fig3['sha256']}").json()
        assert one["implementations"] == fig3["implementations"]
        # Bad input is still refused, naming the problem.
        r = c.post(f"{API}/vnf_packages", headers=GZ,
                   content=bundle({**MULTI, "implementations": {"wasm": {"memory-mb": 1}}}))
        assert r.status_code == 422 and "not among flavours" in r.text
