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
