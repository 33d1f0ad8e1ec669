# cflib.sh - the content filter's scripts' helpers. Sourced after common.sh.
RULESET="$NF_STATE_DIR/ruleset.nft"
cf() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/cf.py" "$@"; }
# Start the filter daemon unless it runs, and wait (5 s at most) until it has bound its queue:
# it writes stats.json then. Queued DNS before that would be dropped (no bypass).
cf_daemon_start() {
    daemon_pid cf >/dev/null && return 0
    local marker="$NF_STATE_DIR/stats.json" before now i
    before=$(stat -c "%i %.9Y" "$marker" 2>/dev/null || echo none)
    daemon_start cf "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/cf.py" daemon
    for ((i = 0; i < 250; i++)); do
        daemon_pid cf >/dev/null || die "filter daemon exited: $(tail -n 5 "$NF_RUN_DIR/cf.log" 2>/dev/null)"
        now=$(stat -c "%i %.9Y" "$marker" 2>/dev/null || echo none)
        [ "$now" != "$before" ] && return 0
        sleep 0.02
    done
    die "filter daemon did not bind its queue within 5 s"
}
cf_signal() { local pid; if pid=$(daemon_pid cf); then kill "-$1" "$pid"; fi; }
# Have the running daemon write its counters now, and wait (2 s at most) until it has.
cf_flush() {
    local pid marker="$NF_STATE_DIR/stats.json" before i
    pid=$(daemon_pid cf) || return 0
    before=$(stat -c "%i %.9Y" "$marker" 2>/dev/null || echo none)
    kill -USR2 "$pid"
    for ((i = 0; i < 100; i++)); do
        [ "$(stat -c "%i %.9Y" "$marker" 2>/dev/null || echo none)" != "$before" ] && return 0
        sleep 0.02
    done
}
