"""Names of everything the project creates. One prefix, so cleanup finds exactly its own."""

from __future__ import annotations

import functools
import hashlib
import re

PREFIX = "fate-"
IFNAMSIZ = 15  # kernel limit on interface names, without the NUL
_SAFE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def check_token(kind: str, value: str, max_len: int = 32) -> str:
    """Validate a name a user gives (node, owner, NF, port) so it is safe in any resource name."""
    if not value or len(value) > max_len or not _SAFE.fullmatch(value):  # no "x\n"
        raise ValueError(
            f"{kind} {value!r} is not a valid name: use 1-{max_len} characters "
            "a-z, 0-9, '_', '.', '-', starting with a letter or digit"
        )
    return value


# Tags in `fate-<tag>-...` names that are not a node's: hosts' namespaces (h), CPE access
# services' (s), the native and container pools' (pool, cpool, cwarm). A node named like one
# would take them for its own: its agent removes `fate-<node>-...` namespaces it does not
# manage as leftovers (a probe's node `h` removed every host's namespace, 2026-12-06).
RESERVED_NODE_NAMES = frozenset({"h", "s", "pool", "cpool", "cwarm"})


def check_node_name(value: str) -> str:
    """A node's name: check_token's, and not one of RESERVED_NODE_NAMES. ValueError if not."""
    check_token("node", value)
    if value in RESERVED_NODE_NAMES:
        raise ValueError(f"node name {value!r} is reserved (names "
                         f"{PREFIX}{value}-... are the testbed's or a pool's): choose another")
    return value


def ifname(*parts: str) -> str:
    """An interface name with the prefix; hashed when the readable form would be too long."""
    readable = PREFIX + "-".join(parts)
    if len(readable) <= IFNAMSIZ:
        return readable
    digest = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return PREFIX + digest[: IFNAMSIZ - len(PREFIX)]


def nf_netns(node: str, owner: str, nf: str) -> str:
    """The native NF's namespace, named after node, owner and NF (the NNF paper, IV.D)."""
    return f"{PREFIX}{node}-{owner}-{nf}"


def host_netns(host: str) -> str:
    return f"{PREFIX}h-{host}"


def lsi(node: str) -> str:
    """LSI-0 of a node: its OVS bridge (OpenFlow's switch), named after the node."""
    return ifname(node)


def cgroup_parent() -> str:
    return PREFIX + "nfs"


def is_ours(name: str) -> bool:
    return name.startswith(PREFIX)


def is_nf_port(name: str) -> bool:
    """Whether `name` is an NF port's as nf_port makes them ("fate-p" and 9 hex digits): not
    a node's own port, even of a node whose name starts with p (ifname puts a '-' after it)."""
    n = IFNAMSIZ - len(PREFIX) - 1
    return re.fullmatch(re.escape(PREFIX) + f"p[0-9a-f]{{{n}}}", name) is not None


@functools.lru_cache(maxsize=1 << 16)  # every switch-state build names every hop's ports
def nf_port(instance_id: str, port: str) -> str:
    """The root-namespace end of an NF port's veth (hashed: instance ids are long)."""
    digest = hashlib.sha1(f"{instance_id}/{port}".encode()).hexdigest()
    return PREFIX + "p" + digest[: IFNAMSIZ - len(PREFIX) - 1]


def nf_instance_id(node: str, owner: str, nf: str) -> str:
    return f"{node}-{owner}-{nf}"
