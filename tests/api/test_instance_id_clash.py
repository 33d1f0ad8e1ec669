"""Two users whose owner and NF names join to the same instance id (owner 'm-rate' with NF
'limiter', owner 'm' with NF 'rate-limiter': both `<node>-m-rate-limiter`). Probe of
2026-12-06: the second user's login destroyed the first one's running NF (its failed
placement's undo dropped the id) and was steered through it. Now the second placement is
refused with a reason, the first user's NF stays, and nobody is steered through another
user's NF."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import yaml

from netfate import catalogue
from netfate.bundle import build_bundle
from tests.api.conftest import MakeAgent
from tests.api.harness import LiveOrchestrator, wait_op, wait_until

API = "/api/v1"
IID = "cpe1-m-rate-limiter"


def _limiter_bundle(tmp: Path) -> bytes:
    """The catalogue's rate limiter under the NF name 'limiter'."""
    src = Path(catalogue.__file__).parent / "rate-limiter"
    d = tmp / "limiter"
    shutil.copytree(src, d)
    desc = yaml.safe_load((d / "descriptor.yaml").read_text())
    desc["name"] = "limiter"
    (d / "descriptor.yaml").write_text(yaml.safe_dump(desc))
    return build_bundle(d)


def test_a_user_whose_ids_clash_is_refused_and_the_other_keeps_their_nf(
        live: LiveOrchestrator, client: httpx.Client, make_agent: MakeAgent,
        tmp_path: Path) -> None:
    c = client
    agent = make_agent("cpe1")
    r = c.post(f"{API}/vnf_packages", content=_limiter_bundle(tmp_path),
               headers={"Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    for name, nf in (("m-rate", "limiter"), ("m", "rate-limiter")):
        r = c.post(f"{API}/users", json={"name": name, "password": "secret1",
                                          "required_nfs": [nf]})
        assert r.status_code == 201, r.text
    r = c.post(f"{API}/users/m-rate/associate", json={"node": "cpe1", "ip": "10.90.5.1"})
    assert r.status_code == 202, r.text
    (op,) = r.json()["vnf_lcm_op_occs"]
    assert wait_op(c, op)["operation_state"] == "COMPLETED"
    assert IID in agent.running_ids()

    r = c.post(f"{API}/users/m/associate", json={"node": "cpe1", "ip": "10.90.5.2"})
    assert r.status_code == 202, r.text
    (op,) = r.json()["vnf_lcm_op_occs"]
    done = wait_op(c, op)
    assert done["operation_state"] in ("ROLLED_BACK", "FAILED"), done
    detail = done["error"]["detail"]
    assert "'limiter' of 'm-rate'" in detail and "cannot be placed" in detail, detail

    # m-rate's NF is still theirs, wanted and running; m is steered through nothing of it.
    wait_until(lambda: live.orch.coordinator is not None
               and not live.orch.coordinator.busy("m"), 5, "m's plan to end")
    inst = c.get(f"{API}/vnf_instances/{IID}").json()
    assert inst["owner"] == "m-rate" and inst["nf_name"] == "limiter", inst
    assert IID in agent.running_ids()
    rules = c.get(f"{API}/steering_rules").json()
    assert not [x for x in rules if x["user_name"] == "m" and IID in (x.get("chain") or [])], rules
    assert [x for x in rules if x["user_name"] == "m-rate" and x["chain"] == [IID]], rules
