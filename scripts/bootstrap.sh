#!/usr/bin/env bash
# Installs what NetFATE needs on a fresh Debian 12 machine, idempotently:
# Debian packages (only the missing ones), a venv, and the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openvswitch-switch nftables conntrack iproute2 iputils-ping iperf3 ethtool
  dnsmasq-base freeradius freeradius-rest runc busybox-static python3-venv python3-nftables
  tcpdump traceroute procps util-linux kmod postgresql
  chromium prometheus freeradius-utils umoci
  iptables  # a detected capability: the NNF paper's Fig. 3 firewall depends on it
  qemu-system-x86 qemu-guest-agent
  # the vpn NF: charon-systemd (no PID file: one per NF namespace), swanctl, kernel-libipsec
  # (userspace ESP: the target kernel has no CONFIG_INET_ESP) and the gcm/openssl plugins
  strongswan-swanctl charon-systemd libcharon-extra-plugins libstrongswan-standard-plugins
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The Debian package tries to start the system OVS; the testbed runs its own private one.
fi

# Debian's python3 (not a pyenv one): python3-nftables lives in its dist-packages.
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.netfate-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the netfate package into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[dev]"
  touch "$stamp"
fi
