#!/bin/busybox sh
# /init of the NetFATE VM guest (built by netfate.drivers.vm_image): mounts, modules, the
# NF's ports named by MAC (kernel command line: netfate.port=NAME,MAC ...), then the guest
# channel: qemu-guest-agent on the virtio-serial port org.qemu.guest_agent.0, restarted if it
# exits. The NF's lifecycle scripts arrive through that channel (guest-exec).
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs tmp /tmp
# tun: loaded here, as nothing makes /dev/net/tun otherwise (strongSwan's kernel-libipsec)
for m in crc32c_generic virtio_pci virtio_net virtio_console bridge br_netfilter nf_tables nf_conntrack \
         nft_ct nf_conntrack_netlink nft_chain_nat nft_nat nft_masq nfnetlink_queue nft_compat \
         xt_mark xt_tcpudp xt_NFQUEUE tun; do
    modprobe -q "$m" || echo "init: modprobe $m failed" >&2
done
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null
ip link set dev lo up
for kv in $(cat /proc/cmdline); do
    case "$kv" in
    netfate.port=*)
        spec=${kv#netfate.port=}; name=${spec%%,*}; mac=${spec#*,}
        for d in /sys/class/net/*; do
            if [ "$(cat "$d/address")" = "$mac" ]; then
                ip link set dev "${d##*/}" name "$name"
                sysctl -qw "net.ipv6.conf.$name.disable_ipv6=1"
                ip link set dev "$name" up
            fi
        done ;;
    esac
done
mkdir -p /nf /run/qga
port=""
for d in /sys/class/virtio-ports/*; do
    [ "$(cat "$d/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${d##*/}
done
[ -n "$port" ] || echo "init: no guest agent port" >&2
echo "netfate-guest: ready" > /dev/console
while :; do
    /usr/sbin/qemu-ga -m virtio-serial -p "$port" -t /run/qga -f /run/qga/qemu-ga.pid
    sleep 0.2
done
