#!/bin/sh
# banger first boot: install and start an OpenSSH server.
#
# Installed by banger as /usr/local/lib/banger/first-boot.sh and run by
# banger-first-boot.service (or /etc/init.d/banger-first-boot, or a line in
# busybox's /etc/inittab) while /var/lib/banger/first-boot-pending exists.
# The marker is removed only when everything succeeded, so a failed first
# boot (no network yet, a mirror down) is retried on the next boot.
#
# The distribution comes from /etc/os-release (or /usr/lib/os-release):
# ID first, then each word of ID_LIKE. Package managers:
#   apt-get  debian ubuntu kali raspbian linuxmint pop      (unit: ssh)
#   apk      alpine                                         (service: sshd)
#   dnf      fedora rhel centos rocky almalinux, falling back to yum, microdnf
#   pacman   arch archlinux manjaro
#   zypper   opensuse* suse sles
#
# Under banger-init (PID 1 of images without an init, which sets
# BANGER_INIT=1) no service manager is asked for anything: the script
# installs OpenSSH and generates host keys, and banger-init starts
# `sshd -D -e` once the script has exited. Otherwise BANGER_INIT_SYSTEM
# (sysvinit, openrc, busybox; set by banger's service definitions for those
# init systems) says how to enable and start sshd; unset, the script uses
# whichever of systemctl, rc-service and update-rc.d is installed, in that
# order.
#
# BANGER_ROOT (default empty) prefixes every file the script reads or
# writes, so tests can run it against a fake root. Exit status: 0 on
# success, 1 on failure, 2 for an unsupported distribution; the same
# number is written to /run/banger/first-boot.status when the script ends,
# so the agent, tests and people can tell a finished first boot from one
# still running whatever the init system.
set -u

ROOT=${BANGER_ROOT:-}
MARKER=$ROOT/var/lib/banger/first-boot-pending

log() {
    printf 'banger-first-boot: %s\n' "$*" >&2
}

# Prints the value of KEY from an os-release file, unquoted. The file is
# parsed, not sourced, so a hostile image cannot run code here.
os_release_value() {
    key=$1
    file=$2
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            "$key="*)
                value=${line#*=}
                case $value in
                    \"*\") value=${value#\"}; value=${value%\"} ;;
                    \'*\') value=${value#\'}; value=${value%\'} ;;
                esac
                printf '%s\n' "$value"
                return 0
                ;;
        esac
    done < "$file"
    return 0
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# Sets PM and UNIT for a distribution ID; fails for unknown IDs.
pick_family() {
    case $1 in
        debian | ubuntu | kali | raspbian | linuxmint | pop) PM=apt; UNIT=ssh ;;
        alpine) PM=apk; UNIT=sshd ;;
        fedora | rhel | centos | rocky | almalinux) PM=dnf; UNIT=sshd ;;
        arch | archlinux | manjaro) PM=pacman; UNIT=sshd ;;
        opensuse* | suse | sles) PM=zypper; UNIT=sshd ;;
        *) return 1 ;;
    esac
}

install_openssh() {
    case $PM in
        apt)
            DEBIAN_FRONTEND=noninteractive
            export DEBIAN_FRONTEND
            # apt-get update exits 0 when it cannot fetch an index; without
            # Error-Mode=any (apt >= 2.1.16; older apt ignores the option)
            # an offline guest would go on to install from stale lists and
            # time out on every package.
            # Under banger-init no service manager runs and banger-init
            # supervises sshd itself: keep the package's maintainer
            # scripts from starting a second one, with a policy-rc.d that
            # forbids every action (invoke-rc.d(8)), as Debian's container
            # images do. An image's own policy-rc.d is left alone.
            policy=
            if [ "${BANGER_INIT:-}" = 1 ] && [ ! -e "$ROOT/usr/sbin/policy-rc.d" ]; then
                policy=$ROOT/usr/sbin/policy-rc.d
                printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" || policy=
            fi
            apt-get -o APT::Update::Error-Mode=any update &&
                apt-get install -y --no-install-recommends openssh-server
            result=$?
            [ -z "$policy" ] || rm -f "$policy"
            return "$result"
            ;;
        apk)
            apk add --no-cache openssh-server
            ;;
        dnf)
            if have dnf; then
                dnf install -y openssh-server
            elif have yum; then
                yum install -y openssh-server
            elif have microdnf; then
                microdnf install -y openssh-server
            else
                log "none of dnf, yum or microdnf is installed"
                return 1
            fi
            ;;
        pacman)
            pacman -Sy --noconfirm --needed openssh
            ;;
        zypper)
            zypper --non-interactive install openssh
            ;;
    esac
}

generate_host_keys() {
    if [ -n "$ROOT" ]; then
        ssh-keygen -A -f "$ROOT"
    else
        ssh-keygen -A
    fi
}

start_sshd() {
    if [ "${BANGER_INIT:-}" = 1 ]; then
        log "banger-init is PID 1; it starts sshd after first boot"
        return 0
    fi
    case ${BANGER_INIT_SYSTEM:-} in
        sysvinit) start_sshd_sysvinit ;;
        openrc) start_sshd_openrc ;;
        busybox) start_sshd_busybox ;;
        *) start_sshd_any ;;
    esac
}

# No init system named: whichever service manager is installed.
start_sshd_any() {
    if have systemctl; then
        systemctl enable "$UNIT.service" &&
            # --no-block: we run during boot; waiting for the job could
            # deadlock on ordering.
            systemctl start --no-block "$UNIT.service"
    elif have rc-service; then
        rc-update add "$UNIT" default &&
            rc-service "$UNIT" start
    elif have update-rc.d; then
        start_sshd_sysvinit
    else
        log "no service manager (systemctl, rc-service or update-rc.d) found to start $UNIT"
        return 1
    fi
}

# sysv-rc: links in /etc/rc?.d, then start it now. apt's postinst has
# usually done both already; both are idempotent. "service" runs the
# script directly, where invoke-rc.d would obey a policy-rc.d that images
# built for containers often carry to forbid starting daemons.
start_sshd_sysvinit() {
    update-rc.d "$UNIT" defaults || return 1
    if have service; then
        service "$UNIT" start
    else
        "$ROOT/etc/init.d/$UNIT" start
    fi
}

# OpenRC, from banger-first-boot's start(): that service is ordered before
# sshd, so a plain "rc-service sshd start" would wait for it, i.e. for
# itself, until OpenRC gives up after 60 seconds. --nodeps starts sshd now;
# what it needs (the network) is up already.
start_sshd_openrc() {
    rc-update add "$UNIT" default &&
        rc-service --nodeps "$UNIT" start
}

# busybox init: banger's /etc/inittab respawns
# /usr/local/lib/banger/busybox/banger-sshd, which starts sshd as soon as
# this script removes the marker, and on every later boot. Starting sshd
# here as well would race it for port 22, so only without that line (first
# boot run by hand) is sshd started directly.
start_sshd_busybox() {
    if inittab_has /usr/local/lib/banger/busybox/banger-sshd; then
        log "sshd is started by /etc/inittab once first boot is done"
        return 0
    fi
    mkdir -p "$ROOT/run/sshd" && sshd
}

# Whether /etc/inittab has a line containing $1.
inittab_has() {
    [ -r "$ROOT/etc/inittab" ] || return 1
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            *"$1"*) return 0 ;;
        esac
    done < "$ROOT/etc/inittab"
    return 1
}

main() {
    if [ ! -e "$MARKER" ]; then
        log "first boot already done ($MARKER is absent)"
        return 0
    fi

    os_release=$ROOT/etc/os-release
    [ -r "$os_release" ] || os_release=$ROOT/usr/lib/os-release
    if [ ! -r "$os_release" ]; then
        log "cannot identify the distribution: neither /etc/os-release nor /usr/lib/os-release is readable"
        return 2
    fi
    id=$(os_release_value ID "$os_release")
    id_like=$(os_release_value ID_LIKE "$os_release")

    PM=
    UNIT=
    for candidate in $id $id_like; do
        if pick_family "$candidate"; then
            break
        fi
    done
    if [ -z "$PM" ]; then
        log "unsupported distribution ID=${id:-?} ID_LIKE=${id_like:-}; install and start an SSH server yourself, then remove $MARKER"
        return 2
    fi
    log "distribution ${id:-?} uses $PM; installing OpenSSH"

    if [ -x "$ROOT/usr/sbin/sshd" ]; then
        log "sshd is already installed"
    elif ! install_openssh; then
        log "installing OpenSSH with $PM failed; will retry on next boot"
        return 1
    fi
    if ! generate_host_keys; then
        log "ssh-keygen -A failed; will retry on next boot"
        return 1
    fi
    if ! start_sshd; then
        log "enabling and starting $UNIT failed; will retry on next boot"
        return 1
    fi
    rm -f "$MARKER" || return 1
    if [ "${BANGER_INIT:-}" = 1 ]; then
        log "done: OpenSSH is installed with host keys"
    else
        log "done: $UNIT is enabled and started"
    fi
}

# Records how this run ended (see the header); failing to is not an error.
record_status() {
    dir=$ROOT/run/banger
    { mkdir -p "$dir" && printf '%s\n' "$1" > "$dir/first-boot.status"; } 2>/dev/null || true
}

main "$@"
status=$?
record_status "$status"
exit "$status"
