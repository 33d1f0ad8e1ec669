# fwlib.sh - the firewall's fast path. Sourced after common.sh.
# Starting an NF is on the user's critical path (login, roaming), so start does the least:
# one `nft -f` of a ruleset compiled at create, and br0 up.

RULESET="$NF_STATE_DIR/ruleset.nft"
fw() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/fw.py" "$@"; }

# Compile config file $1 (default: the active config) into ruleset file $2 (default
# $RULESET); dies on an invalid config, leaving $2 as it was. Compiled rulesets are kept in
# the node's cache for this bundle (NF_CACHE_DIR), keyed by the ports and the config: users
# who share a policy share its compilation, and Python does not start at all for them.
compile_ruleset() {
    local src="${1:-$ACTIVE_CONFIG}" out="${2:-$RULESET}" key cached
    if [ -z "${NF_CACHE_DIR:-}" ]; then
        fw render "$src" "$out"
        return
    fi
    key=$(printf '%s\n' "$NF_PORTS" | cat - "$src" | sha256sum)
    cached="$NF_CACHE_DIR/ruleset-${key%% *}.nft"
    [ -s "$cached" ] || fw render "$src" "$cached"
    cp -f -- "$cached" "$out.tmp.$$"
    mv -f -- "$out.tmp.$$" "$out"
}
