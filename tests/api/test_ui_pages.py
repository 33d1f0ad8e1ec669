"""The web UI without a browser: every view renders what the database holds, and every
action does what the REST API would (or says why not). The browser test is
tests/integration/test_ui.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from netfate import api_auth
from tests.api.conftest import MakeAgent
from tests.api.harness import TOKEN, LiveOrchestrator, wait_op, wait_until

API = "/api/v1"
FW = "cpe1-user1-firewall"


@contextlib.contextmanager
def ui_client(live: LiveOrchestrator) -> Iterator[httpx.Client]:
    """A browser's view: logged in (the session cookie), sending the CSRF header."""
    with httpx.Client(base_url=live.url, timeout=15) as c:
        assert c.post("/ui/login", data={"token": TOKEN}).status_code == 303
        c.headers[api_auth.CSRF_HEADER] = api_auth.csrf_value(
            TOKEN, c.cookies[api_auth.SESSION_COOKIE])
        yield c


def test_views_and_actions(client: httpx.Client, live: LiveOrchestrator,
                           make_agent: MakeAgent) -> None:
    cpe1 = make_agent("cpe1")
    make_agent("cpe2")
    with ui_client(live) as ui:
        assert "user user1 created" in ui.post("/ui/users", data={
            "name": "user1", "password": "secret1", "nfs": "firewall"}).text
        assert "refused" in ui.post("/ui/users", data={"name": "user1",
                                                       "password": "secret1"}).text
        r = client.post(f"{API}/users/user1/associate", json={"node": "cpe1"})
        assert r.status_code == 202, r.text
        for op in r.json()["vnf_lcm_op_occs"]:
            assert wait_op(client, op)["operation_state"] == "COMPLETED"
        cpe1.notify("port-scan", FW, src="10.0.0.9")
        (note,) = wait_until(lambda: client.get(f"{API}/notifications").json(), 5, "a note")

        pages = {v: ui.get(f"/ui/{v}") for v in ("topology", "users", "nfs", "operations",
                                                  "notifications")}
        assert all(p.status_code == 200 for p in pages.values())
        assert 'id="node-cpe1"' in pages["topology"].text and f'data-nf="{FW}"' in pages[
            "topology"].text
        assert 'data-user="user1"' in pages["users"].text
        assert f'data-nf="{FW}"' in pages["nfs"].text
        assert "INSTANTIATE" in pages["operations"].text
        assert f'data-notification="{note["id"]}"' in pages["notifications"].text
        frag = ui.get("/ui/frag/notifications", params={"owner": "nobody"})
        assert frag.status_code == 200 and "<html" not in frag.text
        assert "data-notification=" not in frag.text  # filtered out
        assert ui.get("/ui/nope").status_code == 404

        assert "acknowledged" in ui.post(f"/ui/notifications/{note['id']}/ack").text
        assert client.get(f"{API}/notifications", params={"acknowledged": True}).json()
        assert "muted" in ui.post(f"/ui/nfs/{FW}/mute").text
        # The NF's own status report, asked of its agent on demand (API and UI cell).
        st = client.get(f"{API}/vnf_instances/{FW}/status")
        assert st.status_code == 200 and st.json()["detail"] == {"drops": 7}, st.text
        assert client.get(f"{API}/vnf_instances/cpe1-nobody-firewall/status").status_code == 404
        cell = ui.get(f"/ui/nfs/{FW}/status").text
        assert "drops" in cell and "7" in cell and "<html" not in cell

        assert "migrating" in ui.post("/ui/nfs/migrate", data={"instance": FW,
                                                               "node": "cpe2"}).text
        wait_until(lambda: any(i["id"] == "cpe2-user1-firewall" and i["actual_state"] ==
                               "running" for i in client.get(f"{API}/vnf_instances").json()),
                   15, "the migrated firewall")
        assert "refused" in ui.post("/ui/nfs/migrate", data={"instance": "x-y-z",
                                                             "node": "cpe2"}).text

        out = ui.post("/ui/users/user1/chain", data={"op": "add", "nf": "rate-limiter"}).text
        assert "firewall → rate-limiter" in out, out
        assert client.get(f"{API}/users/user1").json()["required_nfs"] == [
            "firewall", "rate-limiter"]
        ui.post("/ui/users/user1/chain", data={"op": "remove", "nf": "rate-limiter"})
        assert client.get(f"{API}/users/user1").json()["required_nfs"] == ["firewall"]
        assert "refused" in ui.post("/ui/users/user1/chain", data={"op": "add",
                                                                   "nf": "nope"}).text

        assert "marked down" in ui.post("/ui/nodes/cpe2/state", data={"down": "1"}).text
        assert client.get(f"{API}/nodes/cpe2").json()["admin_down"] is True
        assert "marked up" in ui.post("/ui/nodes/cpe2/state", data={"down": "0"}).text

        assert "session ended" in ui.post("/ui/users/user1/end").text
