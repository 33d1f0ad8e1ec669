"""Devices that change (issue #16): a randomised MAC logging in again, and a device that
changes hands. Nothing of the old MAC, or of the previous user, stays steered."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import MakeAgent
from tests.api.harness import wait_until

API = "/api/v1"
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def add_user(c: httpx.Client, name: str) -> None:
    r = c.post(f"{API}/users", json={"name": name, "password": "secret1"})
    assert r.status_code == 201, r.text


def associate(c: httpx.Client, user: str, mac: str, ip: str) -> None:
    r = c.post(f"{API}/users/{user}/associate", json={"node": "cpe1", "mac": mac, "ip": ip})
    assert r.status_code == 202, r.text


def rules(c: httpx.Client) -> list[tuple[Any, ...]]:
    return sorted((x["user_name"], x["mac"]) for x in
                  c.get(f"{API}/steering_rules", params={"node": "cpe1"}).json())


def test_a_new_mac_replaces_the_old_one_everywhere(client: httpx.Client,
                                                   make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client, "user1")
    associate(client, "user1", MAC1, "10.90.100.7")
    wait_until(lambda: rules(client) == [("user1", MAC1)], 5, "user1 steered on MAC1")
    associate(client, "user1", MAC2, "10.90.100.7")  # same device, randomised MAC
    wait_until(lambda: rules(client) == [("user1", MAC2)], 5, "user1 steered on MAC2 only")
    user = client.get(f"{API}/users/user1").json()
    assert (user["mac"], user["access_node"]) == (MAC2, "cpe1")


def test_a_device_that_changes_hands_releases_the_previous_user(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    make_agent("cpe1")
    add_user(client, "user1")
    add_user(client, "user2")
    associate(client, "user1", MAC1, "10.90.100.7")
    wait_until(lambda: rules(client) == [("user1", MAC1)], 5, "user1 steered")
    associate(client, "user2", MAC1, "10.90.100.8")  # another person logs in on it
    wait_until(lambda: rules(client) == [("user2", MAC1)], 5, "only user2 steered on MAC1")
    assert client.get(f"{API}/users/user1").json()["access_node"] is None
    assert client.get(f"{API}/users/user2").json()["access_node"] == "cpe1"


def test_an_address_that_changes_hands_releases_the_previous_user(
        client: httpx.Client, make_agent: MakeAgent) -> None:
    """Two active users on one address at one node (a lease that expired and went to
    another device, or an operator's association): the switch could not tell whose the
    traffic to it is. The user before leaves, as when a device changes hands."""
    make_agent("cpe1")
    for u in ("user1", "user2", "user3"):
        add_user(client, u)
    associate(client, "user1", MAC1, "10.90.100.7")
    associate(client, "user3", "02:00:00:00:00:03", "10.90.100.9")
    wait_until(lambda: len(rules(client)) == 2, 5, "user1 and user3 steered")
    associate(client, "user2", MAC2, "10.90.100.7")  # another device, the same address
    wait_until(lambda: rules(client) == [("user2", MAC2), ("user3", "02:00:00:00:00:03")],
               5, "user1 released, user2 steered, user3 untouched")
    assert client.get(f"{API}/users/user1").json()["access_node"] is None
    assert client.get(f"{API}/users/user2").json()["ip"] == "10.90.100.7"
