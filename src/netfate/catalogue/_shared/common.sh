# common.sh - shared helpers for NetFATE native NF lifecycle scripts.
# Sourced (never executed) by scripts/<action>. Vendored identically into every catalogue
# bundle, because each bundle is shipped and extracted on its own.
# Runs inside the NF's network namespace, as root, cwd = $NF_DIR.

: "${NF_DIR:?NF_DIR is not set}"
: "${NF_BUNDLE_DIR:?NF_BUNDLE_DIR is not set}"
: "${NF_NAME:=unknown}"
: "${NF_ACTION:=${0##*/}}"
: "${NF_PORTS:=lan wan}"
: "${NF_STATE_DIR:=$NF_DIR/state}"
: "${NF_RUN_DIR:=$NF_DIR/run}"
: "${NF_PYTHON:=python3}"
export NF_DIR NF_BUNDLE_DIR NF_NAME NF_ACTION NF_PORTS NF_STATE_DIR NF_RUN_DIR NF_PYTHON

# The configuration the NF is running with: written by create/update (copy of $NF_CONFIG)
# and by import-state (config carried in the state document); start uses it.
ACTIVE_CONFIG="$NF_STATE_DIR/config.json"
BRIDGE=br0

[ -d "$NF_STATE_DIR" ] && [ -d "$NF_RUN_DIR" ] || mkdir -p "$NF_STATE_DIR" "$NF_RUN_DIR"

log() { echo "[$NF_NAME/$NF_ACTION] $*" >&2; }
die() { echo "error: [$NF_NAME/$NF_ACTION] $*" >&2; exit 1; }

# Copy $NF_CONFIG to the active config, atomically.
config_take() {
    [ -n "${NF_CONFIG:-}" ] && [ -r "$NF_CONFIG" ] || die "NF_CONFIG (${NF_CONFIG:-unset}) is not readable"
    cp -- "$NF_CONFIG" "$ACTIVE_CONFIG.tmp.$$"
    mv -f -- "$ACTIVE_CONFIG.tmp.$$" "$ACTIVE_CONFIG"
}
# Make sure there is an active config (start without create, e.g. after a node restart).
config_ensure() { [ -s "$ACTIVE_CONFIG" ] || config_take; }

# Create br0 with every port of the NF as a member. br0 is left DOWN (no forwarding):
# bridge_up starts forwarding, once the NF's datapath (rules, qdiscs, taps) is in place.
bridge_ensure() {
    if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
        ip link add name "$BRIDGE" type bridge stp_state 0 forward_delay 0
    fi
    # The NF must not originate IPv6 (RS, DAD, MLD) into the user's or the operator's network.
    sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1" 2>/dev/null || true
    local p
    for p in $NF_PORTS; do
        ip link show dev "$p" >/dev/null 2>&1 || die "port $p does not exist in the NF namespace"
        ip link set dev "$p" master "$BRIDGE"
        ip link set dev "$p" up
    done
}
bridge_up() { bridge_ensure; ip link set dev "$BRIDGE" up; }
# Stop forwarding, keep everything else (fdb, conntrack, qdiscs, rules).
bridge_down() {
    if ip link show dev "$BRIDGE" >/dev/null 2>&1; then ip link set dev "$BRIDGE" down; fi
}
bridge_delete() {
    if ip link show dev "$BRIDGE" >/dev/null 2>&1; then ip link del dev "$BRIDGE"; fi
}

paused_flag="$NF_RUN_DIR/paused"
mark_paused() { : > "$paused_flag"; }
clear_paused() { rm -f -- "$paused_flag"; }

# ---- daemons: PID files hold "PID STARTTIME" so a recycled PID is never mistaken for ours.
_proc_starttime() {  # field 22 of /proc/PID/stat; fails if PID is gone or a zombie
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [ "$1" != "Z" ] || return 1
    echo "${20}"
}
# daemon_pid NAME: print the PID if the recorded process is still alive, else fail.
daemon_pid() {
    local f="$NF_RUN_DIR/$1.pid" pid="" st="" now
    [ -r "$f" ] || return 1
    read -r pid st < "$f" || true
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    now=$(_proc_starttime "$pid") || return 1
    [ -z "$st" ] || [ "$now" = "$st" ] || return 1
    echo "$pid"
}
# daemon_start NAME CMD...: start CMD in its own session, record its PID. No-op if running.
daemon_start() {
    local name=$1; shift
    if daemon_pid "$name" >/dev/null; then return 0; fi
    setsid "$@" </dev/null >>"$NF_RUN_DIR/$name.log" 2>&1 &
    local pid=$!
    local st; st=$(_proc_starttime "$pid") || st=""
    echo "$pid $st" > "$NF_RUN_DIR/$name.pid.tmp"
    mv -f -- "$NF_RUN_DIR/$name.pid.tmp" "$NF_RUN_DIR/$name.pid"
}
# daemon_stop NAME [TIMEOUT_S]: SIGTERM, wait, then SIGKILL; only the recorded PID.
daemon_stop() {
    local name=$1 timeout=${2:-3} pid i
    if pid=$(daemon_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < timeout * 50; i++)); do
            daemon_pid "$name" >/dev/null || break
            sleep 0.02
        done
        if daemon_pid "$name" >/dev/null; then
            log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f -- "$NF_RUN_DIR/$name.pid"
}

# br0 with every port as a member, left down, in one ip(8) run: the fast path for a new
# namespace (the driver has set the ports up). Anything unexpected falls back to bridge_ensure.
bridge_create() {
    local cmds="link add name $BRIDGE type bridge stp_state 0 forward_delay 0"$'\n' p
    for p in $NF_PORTS; do cmds+="link set dev $p master $BRIDGE"$'\n'; done
    ip -batch - <<< "$cmds" 2>/dev/null || bridge_ensure
    # no IPv6 chatter from br0 (the driver normally disables IPv6 in the namespace already)
    { echo 1 > "/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6"; } 2>/dev/null || true
}
