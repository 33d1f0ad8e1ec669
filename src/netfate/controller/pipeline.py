"""The controller's OpenFlow 1.3 pipeline: tables, priorities, cookies and metadata tags.

    table 0 INGRESS   port security: which port may send what; who the packet belongs to
    table 1 ACTIVITY  one idle-timeout flow per authenticated user, both directions
    table 2 STEER     local services, then classification and the user's chain, hop by hop
    table 3 CAPTIVE   unauthenticated users: DNS (any resolver) to the CPE's captive resolver,
                      HTTP to the portal, else drop

TS rules (Table I) live in table 0, in a band of their own above the rest (P_TS_RULE_BASE).

Every flow the controller installs carries a cookie with its mark in the top byte, so it finds
(and removes) exactly its own flows, and the kind and owner below it, so a FlowRemoved or a
stale flow can be traced to the user it belongs to.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

INGRESS, ACTIVITY, STEER, CAPTIVE = 0, 1, 2, 3
TABLES = (INGRESS, ACTIVITY, STEER, CAPTIVE)

# Table 0
# TS rules (NNF paper, Table I) are explicit orders (an operator's, a benchmark's): they sit
# above everything the controller derives, at this base + the rule's own priority (1..64535).
P_TS_RULE_BASE = 1000
# Frames whose source MAC is a group address (I/G bit set): no station sends them (IEEE 802
# 8.2), so they are dropped on every port before anything else the controller derives, and
# never reach the controller (Faucet's drop_broadcast_source_address).
P_GROUP_SRC = 999
GROUP_BIT = "01:00:00:00:00:00"
P_ARP_TO_SERVICES = 300   # a client's ARP for the CPE's own address
P_ARP_TO_CLIENT = 300     # ARP for a client's address, from the uplink
P_ARP_FROM_CLIENT = 290   # a client's ARP with its own sender addresses, to the uplink
P_DNS_REPLY = 220         # the captive resolver's replies to a client: port 53 again
P_DHCP_KNOWN = 210        # a known client's DHCP: to the CPE, not counted as activity
P_ANCHORED_UP = 201       # an anchored user's IPv4 from the uplink: theirs before a local
                          # user's downstream (a packet between the two matches both)
P_USER = 200              # a user's IPv4 in and out; NF ports; services port to a client
P_ANCHOR = 160            # core, mid-migration: a user's IPv4 via the CPE running their NFs
P_LOCATION_HAIRPIN = 151  # core: a user's traffic from the CPE they are behind, back to it
P_LOCATION = 150          # core: a user's traffic to the CPE they are behind now
P_LOCATION_ARP_HAIRPIN = 141
P_LOCATION_ARP = 140
P_DHCP_NEW = 100          # DHCP from any MAC on an access port: new clients get a lease
P_SERVICES_BCAST = 100    # broadcasts from the services namespace to the access ports
P_SERVICES_DHCP = 90      # DHCP replies to clients the controller doesn't know yet
P_NORMAL = 1              # L2 learning switch among infrastructure ports only
P_MISS = 0                # table-miss: drop (fail_mode=secure, the controller owns the table)

# Table 1
P_IDLE = 100

# Table 2
P_ANCHOR_LOCAL = 3000     # + a local user's chain priority: an anchored user's traffic to
                          # or from a user local to the anchor CPE, from one chain to the other
P_LOCAL = 2000            # an authenticated user's DNS / portal traffic to the CPE
P_CLASSIFIER_BASE = 200   # + the classifier's own priority (1..799)
P_CHAIN = 100             # the user's default chain

# Table 3
P_CAPTIVE_ALLOW = 300
P_REDIRECT = 200

COOKIE_MARK = 0x4E << 56  # 'N'
_MARK_MASK = 0xFF << 56
ALL_ONES = (1 << 64) - 1


class Kind(IntEnum):
    BASE = 1       # table-miss, NORMAL for infra ports
    SERVICES = 2   # DHCP/DNS/portal paths shared by all clients of a CPE
    USER = 3       # a user's port security and ARP
    STEER = 4      # a user's classification and chain
    IDLE = 5       # a user's idle-detection flow
    LOCATION = 6   # core: where a user is now
    NF_OWN = 7     # an NF's own addresses
    TS_RULE = 8    # a TS rule (Table I), owned by its rule id
    TRANSIT = 9    # another node's user's chain stretch hosted here (the overlay)


def cookie(kind: Kind, ident: str) -> int:
    """64 bits: mark, kind, then 48 bits of a hash of the owner (user name, or a rule id)."""
    h = int(hashlib.sha1(ident.encode()).hexdigest()[:12], 16)
    return COOKIE_MARK | (int(kind) << 48) | h


def is_ours(c: int) -> bool:
    return c & _MARK_MASK == COOKIE_MARK


def kind_of(c: int) -> Kind | None:
    if not is_ours(c):
        return None
    try:
        return Kind((c >> 48) & 0xFF)
    except ValueError:
        return None


# Metadata: which user a packet belongs to and which way it goes, set in table 0 from the
# port-security match, so later tables never re-derive (or mistake) the owner.
UP, DOWN = 0b01, 0b10
DIR_MASK = 0b11
USER_MASK = ALL_ONES ^ DIR_MASK


def user_tag(user: str) -> int:
    """62 bits from the user's name; metadata is tag << 2 | direction."""
    return int(hashlib.sha1(user.encode()).hexdigest()[:16], 16) >> 2


def metadata(user: str, direction: int) -> int:
    return (user_tag(user) << 2) | direction


# Datapath ids: each node's bridge is given one from its node name, so the controller knows
# which node a connecting switch is (the testbed sets other_config:datapath-id).
DPID_PREFIX = 0x4E46 << 48  # 'NF': a NetFATE switch, and 48 bits of the node name's hash


def datapath_id(node: str) -> int:
    return DPID_PREFIX | int(hashlib.sha1(node.encode()).hexdigest()[:12], 16)


def ovs_datapath_id(node: str) -> str:
    """The same, as OVS wants it in other_config:datapath-id (16 hex digits)."""
    return f"{datapath_id(node):016x}"


# Tunnel keys (VXLAN VNI, 24 bits; issue 11): which user a packet in the overlay belongs to,
# which remote stretch of their chain (segment) it is on, and which way it goes, so the far
# switch never looks at the user's addresses. 18 bits of the user's name, 4 of the segment,
# 2 of the leg: out to the far node or back from it, upstream or downstream.
UP_OUT, UP_BACK, DOWN_OUT, DOWN_BACK = 0, 1, 2, 3
TUNNEL_USER_BITS = 18


def tunnel_user(user: str) -> int:
    """The user's 18 bits of the key (two users may share them: flows.py refuses the later
    one on a switch where both have overlay traffic)."""
    return int(hashlib.sha1(b"tun:" + user.encode()).hexdigest()[:8], 16) >> (32 - 18)


def tunnel_key(user: str, segment: int, leg: int) -> int:
    """The VNI of (user, segment 0..15, leg UP_OUT..DOWN_BACK)."""
    if not 0 <= segment <= 15 or leg not in (UP_OUT, UP_BACK, DOWN_OUT, DOWN_BACK):
        raise ValueError(f"tunnel key: segment {segment} or leg {leg} out of range")
    return (tunnel_user(user) << 6) | (segment << 2) | leg


# A tenant's VLAN on a shared NF's ports (NNF paper IV.E: one instance for many tenants, each
# tenant's traffic marked so the NF keeps them apart; a VLAN per tenant is what a multitenant
# NF sees on its ports). 1..4094 from the user's name, the same on every switch, so the NF's
# per-tenant configuration names it; two users of one shared NF with the same VID: the later
# one is left out on that switch with a reason (flows.py, fail closed).
VLAN_PRESENT = 0x1000  # OFPVID_PRESENT


def tenant_vlan(user: str) -> int:
    """The user's VLAN ID (1..4094) on shared NFs' ports."""
    return 1 + int(hashlib.sha1(b"vlan:" + user.encode()).hexdigest()[:8], 16) % 4094
