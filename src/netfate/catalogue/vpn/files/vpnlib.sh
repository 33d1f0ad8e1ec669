# vpnlib.sh - the VPN's scripts' helpers. Sourced after common.sh.
vpn() { "$NF_PYTHON" -S -I "$NF_BUNDLE_DIR/files/vpn.py" "$@"; }
# charon-systemd: no PID file of its own, so one per NF namespace can run; its config, vici
# socket and log are the NF's (STRONGSWAN_CONF), never the host's /etc/strongswan*.
charon_start() {
    daemon_start charon env "STRONGSWAN_CONF=$NF_STATE_DIR/strongswan.conf" /usr/sbin/charon-systemd
    vpn load
}
# SIGTERM: charon deletes its SAs at the gateway (IKEv2 INFORMATIONAL DELETE) before it ends.
charon_stop() { daemon_stop charon 5; rm -f -- "$NF_RUN_DIR/charon.vici"; }
