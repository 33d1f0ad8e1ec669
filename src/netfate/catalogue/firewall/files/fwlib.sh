# fwlib.sh - the firewall's fast path. Sourced after common.sh.
# Starting an NF is on the user's critical path (login, roaming), so start does the least:
# one `nft -f` of a ruleset compiled at create, and br0 up.

RULESET="$NF_STATE_DIR/ruleset.nft"
fw() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/fw.py" "$@"; }

# Compile the active config into $RULESET. Compiled rulesets are kept in the node's cache for
# this bundle (NF_CACHE_DIR), keyed by the ports and the config: users who share a policy
# share its compilation, and Python does not start at all for them.
compile_ruleset() {
    if [ -z "${NF_CACHE_DIR:-}" ]; then
        fw render "$ACTIVE_CONFIG" "$RULESET"
        return
    fi
    local key cached
    key=$(printf '%s\n' "$NF_PORTS" | cat - "$ACTIVE_CONFIG" | sha256sum)
    cached="$NF_CACHE_DIR/ruleset-${key%% *}.nft"
    [ -s "$cached" ] || fw render "$ACTIVE_CONFIG" "$cached"
    cp -f -- "$cached" "$RULESET"
}

# br0 with every port as a member, left down, in one ip(8) run. The namespace is new at
# create; anything unexpected falls back to the step-by-step bridge_ensure.
bridge_create() {
    local cmds="link add name $BRIDGE type bridge stp_state 0 forward_delay 0"$'\n' p
    for p in $NF_PORTS; do cmds+="link set dev $p master $BRIDGE"$'\n'; done
    ip -batch - <<< "$cmds" 2>/dev/null || bridge_ensure
}
