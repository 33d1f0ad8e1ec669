"""The web UI without a browser: every view renders what the database holds, and every
action does what the REST API would (or says why not). The browser test is
tests/integration/test_ui.py."""

from __future__ import annotations

import contextlib
import html
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
        # an NF whose config-schema needs what the user has no config for (the VPN's
        # address...): refused, the chain as it was (it cut a logged-in user off)
        out = ui.post("/ui/users/user1/chain", data={"op": "add", "nf": "vpn"}).text
        assert "refused" in out and "address" in out and "nf_config.vpn" in out, out
        assert client.get(f"{API}/users/user1").json()["required_nfs"] == ["firewall"]

        assert "marked down" in ui.post("/ui/nodes/cpe2/state", data={"down": "1"}).text
        assert client.get(f"{API}/nodes/cpe2").json()["admin_down"] is True
        assert "marked up" in ui.post("/ui/nodes/cpe2/state", data={"down": "0"}).text
        for bad in ({"down": "yes"}, {"down": ""}, {"state": "bogus"}):  # (probe: "marked up")
            assert "refused: field down must be 1" in ui.post("/ui/nodes/cpe2/state",
                                                              data=bad).text

        assert "session ended" in ui.post("/ui/users/user1/end").text
        assert "has no session" in ui.post("/ui/users/user1/end").text  # (said "ended")


def test_troubleshooting_from_the_console(client: httpx.Client, live: LiveOrchestrator,
                                          make_agent: MakeAgent) -> None:
    """The operator asks "where is it broken?" from the Troubleshoot page; the question runs
    through the API's operation and its report shows on the page. Bad questions are
    refused with why, and nothing is asked."""
    make_agent("cpe1")
    make_agent("core", role="pe")
    r = client.post(f"{API}/users", json={"name": "user1", "password": "secret1",
                                          "required_nfs": ["firewall"]})
    assert r.status_code == 201, r.text
    r = client.post(f"{API}/users/user1/associate",
                    json={"node": "cpe1", "mac": "02:00:00:00:00:01", "ip": "10.0.0.2"})
    assert wait_op(client, r.json()["vnf_lcm_op_occs"][0])["operation_state"] == "COMPLETED"
    with ui_client(live) as ui:
        page = ui.get("/ui/troubleshoot")
        assert page.status_code == 200 and 'id="troubleshoot-form"' in page.text
        assert "no questions asked yet" in page.text
        for data, words in (({"user": "nobody"}, "does not exist"),
                            ({"user": "user1", "port": "8x"}, "port '8x'"),
                            ({"user": "user1", "port": "70000"}, "port"),
                            ({"user": "user1", "timeout_s": "1e9"}, "timeout_s '1e9'"),
                            ({"user": "user1", "timeout_s": "999"}, "timeout_s"),
                            ({"destination": "224.0.0.1"}, "unicast"),
                            ({}, "a user, a destination, or both")):
            out = html.unescape(ui.post("/ui/troubleshoot", data=data).text)
            assert "refused" in out and words in out, (data, out)
        assert client.get(f"{API}/troubleshoot").json() == []
        out = html.unescape(ui.post("/ui/troubleshoot", data={"user": "user1",
                                                              "port": "443",
                                                              "timeout_s": "2"}).text)
        assert "asking where user1's traffic stops" in out, out
        (q,) = client.get(f"{API}/troubleshoot").json()
        wait_until(lambda: client.get(f"{API}/troubleshoot/{q['id']}").json()[
            "operation_state"] != "PROCESSING" or None, 30, "the question to end")
        frag = ui.get("/ui/frag/troubleshoot").text
        assert f'data-question="{q["id"]}"' in frag and "<html" not in frag
        assert "COMPLETED" in frag and "asked at 2 points" in frag, frag


def test_a_notification_id_out_of_range_is_refused_not_a_500(live: LiveOrchestrator) -> None:
    """The UI's actions took any integer: 99999999999999999999 reached SQLite and was an
    OverflowError, a 500 (new-user probe, 2026-12-03). Now the API's bounds: 422."""
    with ui_client(live) as ui:
        for nid in ("99999999999999999999", "0", "-1"):
            for action in ("ack", "delete"):
                r = ui.post(f"/ui/notifications/{nid}/{action}")
                assert r.status_code == 422, (nid, action, r.status_code, r.text[:200])


def test_a_form_body_of_another_kind_or_not_utf8_is_refused(client: httpx.Client,
                                                            live: LiveOrchestrator) -> None:
    """A multipart or JSON body was read as empty fields ("'' is not a name"), and bytes
    that are not UTF-8 were stored as U+FFFD in a password (third probe of 2026-12-06)."""
    with ui_client(live) as ui:
        r = ui.post("/ui/users", files={"name": (None, "zz1"), "password": (None, "secret1")})
        assert r.status_code == 422 and "x-www-form-urlencoded" in r.text, r.text
        r = ui.post("/ui/users", json={"name": "zz1", "password": "secret1"})
        assert r.status_code == 422 and "x-www-form-urlencoded" in r.text, r.text
        r = ui.post("/ui/users", content=b"name=zz10&password=%E0%80%80%ZZabcdefgh",
                    headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422 and "not UTF-8" in r.text, r.text
        assert client.get(f"{API}/users/zz1").status_code == 404
        assert client.get(f"{API}/users/zz10").status_code == 404
        long = ui.post("/ui/nfs/migrate", data={"instance": "x" * 5000, "node": "cpe2"}).text
        assert "refused" in long and "x" * 1000 not in long and "characters)" in long, long
        ok = ui.post("/ui/users", data={"name": "zz2", "password": "sécret-2"})
        assert "user zz2 created" in ok.text, ok.text
