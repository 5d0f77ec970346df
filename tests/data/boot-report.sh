#!/bin/sh
# banger boot test report (test only; tests/boot.rs puts it into each guest).
#
# Waits for what banger set up (the NIC's address, first boot's end, sshd
# when the guest is online), prints `BOOT-REPORT:` lines on the console for
# the test to assert on, then asks banger's agent to power the guest off.
# Written for dash and busybox ash with the tools both Debian minbase and
# the busybox example have: perl (Debian) or busybox `ip` (busybox) for
# addresses, perl or the agent's own client for vsock.
exec >/dev/console 2>&1 </dev/null
r() { printf 'BOOT-REPORT: %s\n' "$*"; }
AGENT=/usr/local/bin/banger-vsock-agent

online=no
read -r cmdline </proc/cmdline
for word in $cmdline; do
    [ "$word" = banger_test.online=1 ] && online=yes
done

# Prints `inet DEV ADDR MASK` for every interface.
addresses() {
    if command -v perl >/dev/null 2>&1; then
        for path in /sys/class/net/*; do
            perl -e '
                socket(my $s, 2, 2, 0) or die "socket: $!";
                my $dev = $ARGV[0];
                my ($addr, $mask) = ("none", "none");
                my $buf = pack("a16 x16", $dev);
                $addr = join(".", unpack("x20 C4", $buf)) if ioctl($s, 0x8915, $buf);
                $buf = pack("a16 x16", $dev);
                $mask = join(".", unpack("x20 C4", $buf)) if ioctl($s, 0x891b, $buf);
                print "inet $dev $addr $mask\n";
            ' "${path##*/}"
        done
    else
        # busybox: `2: eth0    inet 10.0.2.15/24 brd ... scope global eth0`
        ip -o -4 addr show | while read -r _ dev _ cidr _; do
            bits=${cidr#*/}
            mask=none
            case $bits in
                8) mask=255.0.0.0 ;; 16) mask=255.255.0.0 ;; 24) mask=255.255.255.0 ;;
                32) mask=255.255.255.255 ;;
            esac
            printf 'inet %s %s %s\n' "$dev" "${cidr%/*}" "$mask"
        done
    fi
}

# Sends one request line to the agent over vsock loopback (CID 1).
ask_agent() {
    if command -v perl >/dev/null 2>&1; then
        perl -e '
            $SIG{ALRM} = sub { print "timeout\n"; exit 0 };
            alarm 10;
            socket(my $s, 40, 1, 0) or do { print "no-socket $!\n"; exit 0 };
            connect($s, pack("S S L L x4", 40, 0, $ARGV[1], 1)) or do { print "no-connect $!\n"; exit 0 };
            syswrite($s, "$ARGV[0]\n");
            my $line = <$s>;
            print defined $line ? $line : "(nothing)\n";
        ' "$1" 52
    else
        "$AGENT" --request "$1" --cid 1 --port 52 || echo "request failed"
    fi
}

# Whether /proc/net/tcp{,6} has a socket on local port 22 in state $1
# (0A listen) or, with $1 = other, in any state but listen.
port22() {
    for table in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$table" ] || continue
        while read -r _ local _ state _; do
            case $local in *:0016) ;; *) continue ;; esac
            if [ "$1" = other ]; then
                [ "$state" != 0A ] && return 0
            elif [ "$state" = "$1" ]; then
                return 0
            fi
        done <"$table"
    done
    return 1
}

# Waits up to $1 seconds for the command in the rest of the arguments.
wait_for() {
    limit=$1
    shift
    i=0
    while ! "$@"; do
        [ "$i" -ge "$limit" ] && return 1
        sleep 1
        i=$((i + 1))
    done
}

nic_configured() { addresses | grep -q ' 10\.0\.2\.15 '; }
first_boot_ended() { [ -e /run/banger/first-boot.status ]; }

r begin
# The file PID 1 runs: the kernel starts /sbin/init, whatever that leads to.
# shellcheck disable=SC2012 # the busybox example has ls but no readlink
r "pid1 $(ls -l /proc/1/exe | sed 's/.* -> //')"
r "online $online"
wait_for 60 nic_configured || r "nic not configured after 60 s"
if [ "$online" = yes ]; then limit=900; else limit=300; fi
if wait_for "$limit" first_boot_ended; then
    r "first-boot-status $(cat /run/banger/first-boot.status)"
else
    r "first-boot-status unfinished"
fi
if [ "$online" = yes ]; then
    if wait_for 60 port22 0A; then
        r "sshd listening"
        # The host connects through qemu's hostfwd once it sees this.
        if wait_for 180 port22 other; then r "ssh-connection seen"; fi
    else
        r "sshd not listening"
    fi
fi
addresses | while read -r line; do r "$line"; done
while read -r dev dest gw _; do
    [ "$dest" = 00000000 ] && r "default-route $dev $gw"
done </proc/net/route
r "hostname $(cat /proc/sys/kernel/hostname)"
r "resolv.conf $(grep '^nameserver' /etc/resolv.conf)"
if [ -e /var/lib/banger/first-boot-pending ]; then r "marker present"; else r "marker absent"; fi
if [ -e /dev/vsock ]; then r "dev-vsock present"; else r "dev-vsock absent"; fi
modules=
while read -r name _; do modules="$modules $name"; done </proc/modules
r "modules$modules"
r "health $(ask_agent health)"
r end
# The shutdown that follows sends SIGTERM to every process: ignore it long
# enough to print the agent's answer.
trap '' TERM
r "poweroff $(ask_agent poweroff)"
