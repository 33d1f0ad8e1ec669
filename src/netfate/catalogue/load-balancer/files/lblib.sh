# lblib.sh - the load balancer's scripts' helpers. Sourced after common.sh.
RULESET="$NF_STATE_DIR/ruleset.nft"
lb() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/lb.py" "$@"; }
