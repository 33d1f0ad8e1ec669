# natlib.sh - the NAT's scripts' helpers. Sourced after common.sh.
RULESET="$NF_STATE_DIR/ruleset.nft"
nat() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/nat.py" "$@"; }
