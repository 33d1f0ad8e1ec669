"""A CPE's access services' settings: the ``access`` group of `netfate.settings`
(NETFATE_ACCESS_<FIELD>), and the defaults of `netfate access serve`'s options.

- ``tls_cert``/``tls_key``: the portal's certificate and key (PEM). With them the captive
  portal API (RFC 8908) is served over https and announced by DHCP option 114 (RFC 8910);
  without them there is no API and no option 114 (RFC 8908 section 3 allows only https).
- ``local_records``: the operator's local zone, ``name=ipv4`` pairs separated by commas.
  Both of the CPE's resolvers answer them with their real address, before and after login
  (access/local_zone.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from netfate.access.local_zone import parse_records
from netfate.errors import InvalidInput


class AccessSettings(BaseModel):
    """The captive portal's TLS files and the operator's local DNS records."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # misspelt: an error; inf: no

    tls_cert: Path | None = Field(default=None, description="The portal's TLS certificate "
                                  "(PEM) for the captive portal API over https")
    tls_key: Path | None = Field(default=None, description="The key of tls_cert (PEM, "
                                 "unencrypted; keep it mode 0600)")
    local_records: str = Field(default="", description="Local DNS records, name=ipv4[,...]: "
                               "answered for real before login too")

    @field_validator("local_records")
    @classmethod
    def _records(cls, v: str) -> str:
        try:
            parse_records(v)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        return v
