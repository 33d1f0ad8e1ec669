"""State and ruleset helpers of the catalogue NFs whose state is nft rules plus conntrack
entries: firewall, nat, load-balancer. One home for what each of them did on its own.

Packed into those bundles as files/ctstate.py (catalogue.EXTRAS), imported as a sibling.
Stdlib only; runs inside the NF's network namespace with "$NF_PYTHON", in every flavour
(native, container, VM): the state document is the same whatever runs the NF.

The state document (nfcommon.state_doc) is {"format", "nf", "config", "conntrack": [...]},
where each conntrack entry is one line of `conntrack -L -o save` ("-A ..."), NAT bindings
included (-n/--src-nat, -g/--dst-nat and the reply tuple are part of that format).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # checked in the source tree; in the bundle it is packed next to this file
    from netfate.catalogue._shared import nfcommon as nf
else:
    import nfcommon as nf
die = nf.die


def run(argv: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `argv` (captured); with `check`, die naming `what` if it fails."""
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        die(f"{what} failed: {p.stderr.strip()}")
    return p


def write_text(path: str, text: str) -> None:
    """Write `path` atomically (a reader sees the old file or the new one)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def ruleset_path() -> str:
    """The compiled ruleset that start loads ($NF_STATE_DIR/ruleset.nft)."""
    return os.path.join(nf.env("NF_STATE_DIR"), "ruleset.nft")


# ---- conntrack ---------------------------------------------------------------------------------
def saved_entries(listing: str) -> list[str]:
    """The entries of `conntrack -L -o save` output (its "-A ..." lines)."""
    return [ln for ln in listing.splitlines() if ln.startswith("-A ")]


def export_conntrack() -> list[str]:
    """Every conntrack entry of the namespace, in the save format. Dies if conntrack fails."""
    return saved_entries(run(["conntrack", "-L", "-o", "save"], "conntrack -L").stdout)


def check_entries(entries: object) -> list[str]:
    """The conntrack entries of a state document: a list of single "-A ..." lines, or die."""
    if not isinstance(entries, list):
        die("state document: conntrack must be a list")
    for ln in entries:
        if not isinstance(ln, str) or not ln.startswith("-A ") or "\n" in ln:
            die("state document: malformed conntrack entry")
    return entries


def restore_conntrack(entries: list[str]) -> tuple[int, int]:
    """Load saved entries (after the ruleset, so NAT hooks exist); returns (restored,
    skipped). An entry that exists already (a flow seen again since start) is skipped."""
    if not entries:
        return 0, 0
    # A fresh file of this process (no tempfile: the VM guest's Python carries only the
    # modules the NFs' helpers need).
    path = os.path.join(nf.env("NF_RUN_DIR"), f".restore-{os.getpid()}.ct")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(entries) + "\n")
    try:
        if run(["conntrack", "-R", path], "", check=False).returncode == 0:
            return len(entries), 0
        restored = skipped = 0
        for ln in entries:  # one at a time, so one existing entry does not lose the rest
            with open(path, "w") as f:
                f.write(ln + "\n")
            if run(["conntrack", "-R", path], "", check=False).returncode == 0:
                restored += 1
            else:
                skipped += 1
        return restored, skipped
    finally:
        os.unlink(path)


# ---- nft -----------------------------------------------------------------------------------------
def nft_load(path: str) -> None:
    run(["nft", "-f", path], "loading the ruleset")


def nft_delete(tables: list[tuple[str, str]]) -> None:
    """Delete the (family, table) tables; absent ones are no error."""
    for fam, tab in tables:
        run(["nft", "delete", "table", fam, tab], "", check=False)


def rule_counters(listing: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{comment: {packets, bytes}} of the counted, commented rules in `nft -j list table`."""
    out: dict[str, dict[str, int]] = {}
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for e in rule.get("expr", []):
            if "counter" in e:
                c = e["counter"]
                out[rule["comment"]] = {"packets": c["packets"], "bytes": c["bytes"]}
    return out


def counters(family: str, table: str) -> tuple[bool, dict[str, dict[str, int]]]:
    """(loaded, {comment: {packets, bytes}}) of the counted, commented rules of a table."""
    p = run(["nft", "-j", "list", "table", family, table], "", check=False)
    if p.returncode != 0:
        return False, {}
    return True, rule_counters(json.loads(p.stdout))


# ---- the state document --------------------------------------------------------------------------
def export_doc(out: str, name: str) -> None:
    """Write NF `name`'s state document to `out`: its active config and conntrack."""
    nf.write_state_doc(out, name, nf.load_active_config(), conntrack=export_conntrack())


def import_doc(path: str, name: str, build: Callable[[dict[str, Any]], str],
               after_load: Callable[[], None] | None = None) -> tuple[dict[str, Any], int, int]:
    """Import NF `name`'s state document `path`: validate and compile its config with
    `build` (config -> ruleset text; dies on a bad one) and check its entries before
    touching anything, then take the config, load the ruleset, run `after_load` (e.g. br0's
    addresses), and restore the conntrack entries. Returns (config, restored, skipped)."""
    doc = nf.read_state_doc(path, name)
    cfg: dict[str, Any] = doc["config"]
    text = build(cfg)
    entries = check_entries(doc.get("conntrack", []))
    nf.save_active_config(cfg)
    write_text(ruleset_path(), text)
    nft_load(ruleset_path())
    if after_load is not None:
        after_load()
    restored, skipped = restore_conntrack(entries)
    print(f"{name}: imported config, {restored} conntrack entries restored, {skipped} "
          "skipped", file=sys.stderr)
    return cfg, restored, skipped
