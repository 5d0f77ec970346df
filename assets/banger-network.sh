#!/bin/sh
# banger guest network: configure the interface banger assigned.
#
# Installed by banger as /usr/local/lib/banger/banger-network.sh and run by
# banger-network.service. The address comes from the kernel command line in
# the kernel's own static form (Documentation/admin-guide/nfs/nfsroot.rst):
#
#   ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>
#
# e.g. ip=172.16.0.2::172.16.0.1:255.255.255.0:vm1:eth0:off:1.1.1.1:8.8.8.8
# server-ip is ignored; an empty gateway adds no default route; an empty
# netmask gets the classful default; an empty device means the first
# interface other than lo (names like ens3 are normal: eth0 is never
# assumed); autoconf must be off or none (anything else, or ip=dhcp, is left
# to a DHCP client). dns0/dns1 become /etc/resolv.conf; without them
# resolv.conf is left alone.
#
# Idempotent: when the interface already has the address (the kernel's own
# ip= handling configured it, or this script ran before) no `ip` command
# changes anything. resolv.conf is rewritten only when its content differs.
# Works with iproute2 or busybox `ip`. Images with neither (debian and ubuntu
# container images ship no iproute2) get the same static configuration
# through systemd-networkd: a .network file in /run/systemd/network.
#
# Environment (for tests): BANGER_CMDLINE (default /proc/cmdline) and
# BANGER_ROOT (default empty: prefixes /sys, /proc/sys and /etc),
# BANGER_NET_WAIT (seconds to wait for the device to appear, and for
# systemd-networkd to configure it, default 10).
set -u

ROOT=${BANGER_ROOT:-}
CMDLINE=${BANGER_CMDLINE:-/proc/cmdline}
WAIT=${BANGER_NET_WAIT:-10}

log() {
    printf 'banger-network: %s\n' "$*" >&2
}

# Prints the prefix length of a dotted netmask, or fails.
prefix_of() {
    bits=0
    seen_zero=no
    old_ifs=$IFS
    IFS=.
    # shellcheck disable=SC2086 # splitting on dots is the point
    set -- $1
    IFS=$old_ifs
    [ $# -eq 4 ] || return 1
    for octet in "$@"; do
        case $octet in
            255) n=8 ;; 254) n=7 ;; 252) n=6 ;; 248) n=5 ;;
            240) n=4 ;; 224) n=3 ;; 192) n=2 ;; 128) n=1 ;; 0) n=0 ;;
            *) return 1 ;;
        esac
        # Ones after a zero bit: not a netmask.
        if [ "$seen_zero" = yes ] && [ "$n" -ne 0 ]; then
            return 1
        fi
        [ "$n" -lt 8 ] && seen_zero=yes
        bits=$((bits + n))
    done
    echo "$bits"
}

# The kernel's default for an empty netmask: by address class.
classful_prefix() {
    first=${1%%.*}
    if [ "$first" -lt 128 ]; then echo 8
    elif [ "$first" -lt 192 ]; then echo 16
    else echo 24
    fi
}

# Prints $1 if that interface exists, or with $1 empty the first one
# other than lo; fails if there is none.
pick_interface() {
    if [ -z "$1" ]; then
        first_interface
    elif [ -e "$ROOT/sys/class/net/$1" ]; then
        printf '%s\n' "$1"
    else
        return 1
    fi
}

# Waits (at most 10 s) until udev has processed every queued event, e.g.
# the rename of a new NIC. Without udevadm nothing renames interfaces.
settle_udev() {
    if command -v udevadm >/dev/null 2>&1; then
        udevadm settle --timeout=10 || log "udevadm settle timed out"
    fi
}

# Prints the first network interface other than lo, in name order.
first_interface() {
    for path in "$ROOT"/sys/class/net/*; do
        name=${path##*/}
        [ -e "$path" ] || continue
        [ "$name" = lo ] && continue
        printf '%s\n' "$name"
        return 0
    done
    return 1
}

# Configures $1 with address $2/$3 and gateway $4 (may be empty) with
# `ip`, unless the interface already has the address.
configure_with_ip() {
    dev=$1 client=$2 prefix=$3 gw=$4
    current=$(ip -o addr show dev "$dev") || current=
    case "$current" in
        *" inet $client/"*)
            log "$dev already has $client; leaving it as is"
            return 0
            ;;
    esac
    if ip link set dev "$dev" up && ip addr add "$client/$prefix" dev "$dev" &&
        { ! is_address "$gw" || ip route replace default via "$gw" dev "$dev"; }; then
        log "configured $dev with $client/$prefix${gw:+ via $gw}"
        return 0
    fi
    log "configuring $dev failed"
    return 1
}

# Configures $1 with address $2 (CIDR) and gateway $3 (may be empty)
# through systemd-networkd, for images without an `ip` command, and waits
# until the address is up. Writing the same file again changes nothing.
configure_with_networkd() {
    dev=$1 cidr=$2 gw=$3
    daemon=''
    for dir in /lib/systemd /usr/lib/systemd; do
        if [ -x "$ROOT$dir/systemd-networkd" ]; then
            daemon=$ROOT$dir/systemd-networkd
            break
        fi
    done
    if [ -z "$daemon" ] || ! command -v systemctl >/dev/null 2>&1; then
        log "cannot configure $dev: no ip command (iproute2 or busybox) and no systemd-networkd"
        return 1
    fi
    network="# Written by banger-network from the kernel command line (ip=).
[Match]
Name=$dev

[Network]
Address=$cidr"
    is_address "$gw" && network="$network
Gateway=$gw"
    network="$network
DHCP=no
LinkLocalAddressing=no
IPv6AcceptRA=no"
    dir=$ROOT/run/systemd/network
    file=$dir/10-banger-$dev.network
    if ! { mkdir -p "$dir" && printf '%s\n' "$network" > "$file"; }; then
        log "cannot write $file"
        return 1
    fi
    # restart, not start: a networkd that already runs must read the file.
    if ! systemctl restart systemd-networkd.service; then
        log "starting systemd-networkd failed"
        return 1
    fi
    wait_online=${daemon%/*}/systemd-networkd-wait-online
    if [ -x "$wait_online" ] &&
        ! "$wait_online" --interface="$dev:routable" --timeout="$WAIT"; then
        log "systemd-networkd did not bring up $dev within ${WAIT}s"
        return 1
    fi
    log "configured $dev with $cidr${gw:+ via $gw} (systemd-networkd)"
}

is_address() {
    case $1 in
        '' | 0.0.0.0 | *[!0-9.]*) return 1 ;;
    esac
    return 0
}

write_resolv_conf() {
    content="# Written by banger-network from the kernel command line (ip=)."
    for server in "$@"; do
        is_address "$server" && content="$content
nameserver $server"
    done
    case $content in *nameserver*) ;; *) return 0 ;; esac
    target=$ROOT/etc/resolv.conf
    if [ -f "$target" ] && [ ! -L "$target" ] && [ "$(cat "$target")" = "$content" ]; then
        return 0
    fi
    tmp=$ROOT/etc/.resolv.conf.banger.$$
    # A symlink (to a resolver stub that is not running here) is replaced.
    if ! { printf '%s\n' "$content" > "$tmp" && mv -f "$tmp" "$target"; }; then
        rm -f "$tmp"
        log "cannot write /etc/resolv.conf"
        return 1
    fi
    log "wrote /etc/resolv.conf"
}

main() {
    if [ ! -r "$CMDLINE" ]; then
        log "cannot read $CMDLINE"
        return 1
    fi
    spec=
    read -r cmdline < "$CMDLINE" || [ -n "${cmdline:-}" ] || cmdline=
    for word in $cmdline; do
        case $word in
            ip=*) spec=${word#ip=} ;; # the last one wins, as in the kernel
        esac
    done
    if [ -z "$spec" ]; then
        log "no ip= on the kernel command line; nothing to do"
        return 0
    fi
    case $spec in
        *:*) ;;
        *) log "ip=$spec is not a static configuration; leaving it to DHCP"; return 0 ;;
    esac

    old_ifs=$IFS
    IFS=:
    # shellcheck disable=SC2086 # splitting on colons is the point
    set -- $spec
    IFS=$old_ifs
    client=${1:-} gateway=${3:-} netmask=${4:-} hostname=${5:-}
    device=${6:-} autoconf=${7:-off} dns0=${8:-} dns1=${9:-}

    case $autoconf in
        off | none | '') ;;
        *) log "ip= asks for autoconf '$autoconf'; leaving it to DHCP"; return 0 ;;
    esac
    if ! is_address "$client"; then
        log "ip= has no valid client address: '$client'"
        return 1
    fi
    if [ -n "$netmask" ]; then
        prefix=$(prefix_of "$netmask") || {
            log "invalid netmask '$netmask'"
            return 1
        }
    else
        prefix=$(classful_prefix "$client")
    fi

    waited=0
    while :; do
        dev=$(pick_interface "$device") || dev=
        if [ -n "$dev" ]; then
            # A NIC appears as eth0 and udev renames it (ens3) a moment
            # later; a name picked in between is gone by the time it is
            # used. Pick again once udev has handled the NIC's events.
            settle_udev
            dev=$(pick_interface "$device") || dev=
            [ -n "$dev" ] && break
        fi
        if [ "$waited" -ge "$WAIT" ]; then
            log "network interface ${device:-other than lo} did not appear"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done

    status=0
    if command -v ip >/dev/null 2>&1; then
        configure_with_ip "$dev" "$client" "$prefix" "$gateway" || status=1
    else
        configure_with_networkd "$dev" "$client/$prefix" "$gateway" || status=1
    fi

    if [ -n "$hostname" ] && [ -w "$ROOT/proc/sys/kernel/hostname" ]; then
        if [ "$(cat "$ROOT/proc/sys/kernel/hostname")" != "$hostname" ]; then
            printf '%s\n' "$hostname" > "$ROOT/proc/sys/kernel/hostname" || status=1
        fi
    fi
    write_resolv_conf "$dns0" "$dns1" || status=1
    return "$status"
}

main "$@"
