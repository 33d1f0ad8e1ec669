"""The Calling-Station-Id FreeRADIUS relays is the station's MAC, in whichever of its usual
forms the NAS wrote it (RFC 3580 §3.21), kept as sessions keep it: lower case, colons."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from netfate.radius.backend import RestRequest


def _req(station: str) -> RestRequest:
    return RestRequest.model_validate({
        "User-Name": {"value": ["user1"]}, "User-Password": {"value": ["secret1"]},
        "Calling-Station-Id": {"type": "string", "value": [station]}})


@pytest.mark.parametrize("given", ["02-AA-00-00-00-01", "02:aa:00:00:00:01", "02AA00000001",
                                   "02aa.0000.0001", "02aa00-000001"])
def test_mac_forms_become_one(given: str) -> None:
    assert _req(given).login().mac == "02:aa:00:00:00:01"


@pytest.mark.parametrize("given", ["zz", "02-aa-00-00-00", "02-aa-00-00-00-01-02",
                                   "02-aa-00-00-00-0g", "02 aa 00 00 00 01",
                                   "02-aa-00-00-00-01\n"])
def test_anything_else_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="MAC address"):
        _req(given)


def test_no_station_id_is_fine() -> None:
    r = RestRequest.model_validate({"User-Name": {"value": ["u"]},
                                    "User-Password": {"value": ["p"]}})
    assert r.login().mac is None
    assert _req("").login().mac is None  # (review, 2026-12-05: refused) as if not sent
