"""TS rules (NNF paper, Table I) that put an operator's probe NF at a point. Pure.

A probe (the catalogue's troubleshooter) bridges its lan and wan ports and has an address of
its own on that bridge. Three ways to attach it, by where it sits:

- `at_access`: at the user's CPE, spliced in front of the user's chain. The user's packets
  go access port -> probe -> where their own first rule sent them; on the way back, what
  their last rule sent to the access port goes through the probe first. The probe's own
  packets (its pings) follow the user's chain, so they meet what the user's traffic meets;
  replies to its MAC take copies of the user's downstream rules.
- `at_ingress`: at a node the user's traffic enters from a link (the PE, from the CPE):
  from that port with the user's MAC -> probe -> the port toward the destination; to the
  user's MAC from anywhere else -> probe -> that port.
- `beside`: off the path (the DC): the probe only talks through the node's uplink.

Every rule id starts with the tag, so `rules_of` and the node's cleanup find them; the
rules sit above the user's own (priority + 50) so removing them restores the user's path.
"""

from __future__ import annotations

from netfate.controller.model import Match, TSRule

OVER = 50  # above the user's own rules (their priority + OVER)


def probe_tag(user: str) -> str:
    return f"op-ts:{user}"


def at_access(tag: str, user_mac: str, access_port: str, uplink_port: str,
              user_rules: list[TSRule], lan: str, wan: str, probe_mac: str,
              priority: int = 100) -> list[TSRule]:
    """Rules splicing a probe (ports `lan`, `wan`, own MAC `probe_mac`) in front of the
    user's chain on their CPE. `user_rules`: the user's TS rules on that LSI (none: the user
    is not steered and the LSI switches them by L2, NORMAL)."""
    mac, pmac = user_mac.lower(), probe_mac.lower()
    p = priority + OVER
    # Not steered: toward the uplink (not NORMAL: the probe's isolated ports would keep it).
    first_up: tuple[str, ...] = (uplink_port,)
    last_down: Match | None = None   # what the user's last rule sends to the access port
    entries: list[TSRule] = []       # the user's downstream rules naming their MAC
    for r in user_rules:
        m = r.match
        if m.in_port == access_port and (m.eth_src or "").lower() == mac:
            first_up = r.output
        elif r.output == (access_port,) and m.in_port not in (None, access_port) \
                and (m.eth_dst or mac).lower() == mac:
            last_down = m
        if (m.eth_dst or "").lower() == mac:
            entries.append(r)
    rules = [
        TSRule(rule_id=f"{tag}:in", priority=p,
               match=Match(in_port=access_port, eth_src=mac), output=(lan,)),
        # The probe's own sides win over the catch-alls below (`down` may match any port).
        TSRule(rule_id=f"{tag}:on", priority=p + 1, match=Match(in_port=wan),
               output=first_up),
        TSRule(rule_id=f"{tag}:back", priority=p + 1, match=Match(in_port=lan),
               output=(access_port,)),
        # What the user's chain hands to the access port goes through the probe first
        # (replies to the probe's own MAC too: its bridge keeps those).
        TSRule(rule_id=f"{tag}:down", priority=p,
               match=last_down or Match(eth_dst=mac), output=(wan,)),
    ]
    # Replies to the probe's address enter the user's way back where the user's do.
    for i, r in enumerate(entries):
        out = (wan,) if r.output == (access_port,) else r.output
        rules.append(TSRule(rule_id=f"{tag}:own:{i}", priority=p,
                            match=r.match.model_copy(update={"eth_dst": pmac}), output=out))
    if not entries:
        rules.append(TSRule(rule_id=f"{tag}:own", priority=p,
                            match=Match(in_port=uplink_port, eth_dst=pmac), output=(wan,)))
    return rules


def at_ingress(tag: str, user_mac: str, in_port: str, out_port: str, lan: str, wan: str,
               probe_mac: str, priority: int = 100) -> list[TSRule]:
    """Rules putting a probe where the user's traffic enters a node from `in_port` (the
    PE's link from the user's CPE); beyond the probe it leaves by `out_port` (toward the
    destination). Not NORMAL: the probe's ports are isolated (a VLAN of their own), so
    L2 switching would keep what comes out of them among NF ports."""
    mac, pmac = user_mac.lower(), probe_mac.lower()
    p = priority + OVER
    return [
        TSRule(rule_id=f"{tag}:in", priority=p,
               match=Match(in_port=in_port, eth_src=mac), output=(lan,)),
        TSRule(rule_id=f"{tag}:on", priority=p + 1, match=Match(in_port=wan),
               output=(out_port,)),
        TSRule(rule_id=f"{tag}:back", priority=p + 1, match=Match(in_port=lan),
               output=(in_port,)),
        TSRule(rule_id=f"{tag}:down", priority=p, match=Match(eth_dst=mac), output=(wan,)),
        TSRule(rule_id=f"{tag}:own", priority=p, match=Match(eth_dst=pmac), output=(wan,)),
    ]


def beside(tag: str, uplink_port: str, lan: str, wan: str, probe_mac: str,
           priority: int = 100) -> list[TSRule]:
    """Rules for a probe off the user's path: out of its wan port to the uplink, and what
    comes to its MAC from the uplink back in. Its lan port leads nowhere."""
    p = priority + OVER
    return [
        TSRule(rule_id=f"{tag}:on", priority=p, match=Match(in_port=wan),
               output=(uplink_port,)),
        TSRule(rule_id=f"{tag}:own", priority=p,
               match=Match(in_port=uplink_port, eth_dst=probe_mac.lower()), output=(wan,)),
        TSRule(rule_id=f"{tag}:lan", priority=p, match=Match(in_port=lan), output=()),
    ]
