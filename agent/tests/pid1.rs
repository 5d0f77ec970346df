//! banger-init as a real PID 1, without a VM: in fresh PID, mount, UTS,
//! IPC and network namespaces, chrooted into a tmpfs root that borrows the
//! host's `/usr` read-only. Root only; skipped otherwise.
//!
//! The root is a tmpfs mounted inside the private mount namespace, so the
//! shutdown's read-only remount of `/` only touches it; `reboot()` in a
//! child PID namespace only ends that namespace. `/dev` is a pre-mounted
//! tmpfs (with `/dev/null`), so the host's devtmpfs is never touched;
//! `/usr/local` and `/usr/lib/modules-load.d` are empty tmpfs mounts, so no
//! host module is loaded.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const INIT: &str = env!("CARGO_BIN_EXE_banger-init");

/// Runs in the new namespaces as their PID 1 until it execs banger-init.
const SETUP: &str = r#"set -eu
exec 1>&2
R=$1 STAGE=$2 INIT=$3
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs "$R"
cp -a "$STAGE/root/." "$R/"
mkdir -p "$R/usr" "$R/proc" "$R/dev"
ln -s usr/bin "$R/bin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"; ln -s usr/sbin "$R/sbin"
mount --bind /usr "$R/usr"
mount -o remount,bind,ro "$R/usr"
mount -t tmpfs -o mode=0755 tmpfs "$R/usr/local"
if [ -d "$R/usr/lib/modules-load.d" ]; then mount -t tmpfs tmpfs "$R/usr/lib/modules-load.d"; fi
cp -a "$STAGE/local/." "$R/usr/local/"
cp "$INIT" "$R/init"
mount -t tmpfs -o mode=0755 tmpfs "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3
mount -t proc proc "$R/proc"
mount --bind "$STAGE/cmdline" "$R/proc/cmdline"
mountpoint -q "$R"
exec chroot "$R" /init
"#;

/// Prints its identity and environment (`$0` of `sh -c SCRIPT arg1` is
/// `arg1`: Entrypoint then Cmd), leaves an orphan that PID 1 must reap,
/// counts zombies, leaves a process that ignores SIGTERM, exits 3.
const WORKLOAD: &str = r#"echo "WORKLOAD uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME term=$TERM host=$HOSTNAME pwd=$(pwd) x=$X args=$0,$1"
sh -c 'sleep 0.2 &'
sleep 1
echo "ZOMBIES=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)"
sh -c 'trap "" TERM; while :; do sleep 1; done' &
sleep 0.5
exit 3"#;

fn write(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for namespaces and mounts".into());
    }
    for tool in [
        "unshare",
        "chroot",
        "mknod",
        "mountpoint",
        "timeout",
        "sh",
        "id",
        "grep",
    ] {
        if !["/usr/bin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists())
        {
            return Some(format!("{tool} is not in /usr/bin or /usr/sbin"));
        }
    }
    if fs::read_link("/bin").ok().as_deref() != Some(Path::new("usr/bin")) {
        return Some("the host is not merged-usr (/bin -> usr/bin)".into());
    }
    None
}

/// Boots `stage` (`root/` for `/`, `local/` for `/usr/local`, `cmdline`)
/// and returns everything printed, in order.
fn boot(dir: &Path, stage: &Path) -> String {
    let mount_point = dir.join("mnt");
    fs::create_dir(&mount_point).unwrap();
    let out = Command::new("timeout")
        .args([
            "60",
            "unshare",
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--kill-child",
            "sh",
            "-c",
            SETUP,
            "setup",
        ])
        .arg(&mount_point)
        .arg(stage)
        .arg(INIT)
        .output()
        .unwrap();
    // Everything went to stderr (`exec 1>&2`), in the order it happened.
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{log}");
    assert_ne!(out.status.code(), Some(124), "timed out:\n{log}");
    assert!(!log.contains("power off failed"), "{log}");
    log
}

/// Asserts that `lines` appear in `log` in this order.
fn assert_in_order(log: &str, lines: &[&str]) {
    let mut rest = log;
    for line in lines {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order in:\n{log}"));
        rest = &rest[at + line.len()..];
    }
}

#[test]
fn boots_runs_the_workload_reaps_and_powers_off_in_namespaces() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPING pid1 namespace test: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let root = stage.join("root");
    write(
        &root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        0o644,
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\ntty:x:5:\napp:x:1000:\nextra:x:2000:app\n",
        0o644,
    );
    write(&root.join("etc/hostname"), "from-etc\n", 0o644);
    write(&root.join("var/lib/banger/first-boot-pending"), "", 0o644);
    let config = serde_json::json!({
        "vsock_port": 4242,
        "entrypoint": ["sh", "-c"],
        "cmd": [WORKLOAD, "arg1"],
        "env": ["X=1"],
        "working_dir": "/work",
        "user": "app",
    });
    write(
        &root.join("etc/banger/init.json"),
        &config.to_string(),
        0o644,
    );
    let local = stage.join("local");
    write(
        &local.join("bin/banger-vsock-agent"),
        "#!/bin/sh\necho \"AGENT $*\"\nexit 69\n",
        0o755,
    );
    write(
        &local.join("lib/banger/first-boot.sh"),
        "echo \"FIRST-BOOT BANGER_INIT=$BANGER_INIT\"\nrm /var/lib/banger/first-boot-pending\n",
        0o755,
    );
    write(
        &stage.join("cmdline"),
        "console=ttyS0 ip=10.9.0.2::10.9.0.1:255.255.255.0:e2e-host:lo:off:1.1.1.1 banger.workload_exit=poweroff\n",
        0o644,
    );
    let log = boot(dir.path(), &stage);
    // In this order.
    let ordered = [
        "banger-init: banger-init 0.1.0 starting as PID 1",
        "banger-init: /proc is already mounted",
        "banger-init: mounted sysfs on /sys",
        "banger-init: /dev is already mounted",
        "banger-init: mounted devpts on /dev/pts",
        "banger-init: mounted tmpfs on /dev/shm",
        "banger-init: mounted tmpfs on /run",
        "banger-init: mounted tmpfs on /tmp",
        "banger-init: host name: e2e-host",
        "banger-init: modules: nothing to load",
        "banger-init: network: added 10.9.0.2/24 to lo",
        "banger-init: network: default route via 10.9.0.1 dev lo",
        "banger-init: network: wrote /etc/resolv.conf",
        "banger-init: started banger-vsock-agent",
        "banger-init: first boot: running /usr/local/lib/banger/first-boot.sh",
        "banger-init: first boot exited with status 0",
        "banger-init: sshd not started",
        "banger-init: creating the working directory /work",
        "banger-init: started the workload",
        "ZOMBIES=0",
        "banger-init: the workload exited with status 3",
        "banger-init: shutdown: the workload exited and banger.workload_exit=poweroff",
        "banger-init: shutdown: no more restarts",
        "banger-init: shutdown: sending SIGTERM to all processes",
        "banger-init: shutdown: waiting up to 5s for processes to exit",
        "banger-init: shutdown: sending SIGKILL to the remaining processes",
        "banger-init: shutdown: waiting up to 1s for processes to exit",
        "banger-init: shutdown: syncing filesystems",
        "banger-init: shutdown: remounted / read-only",
        "banger-init: shutdown: syncing filesystems",
        "banger-init: shutdown: powering off",
    ];
    assert_in_order(&log, &ordered);
    // A child's own output may come before or after the line that logs
    // its start, but always before the line that logs its exit.
    for (first, then) in [
        ("FIRST-BOOT BANGER_INIT=1", "banger-init: first boot exited"),
        (
            "WORKLOAD uid=1000 gid=1000 groups=1000 2000 home=/home/app term=linux \
             host=e2e-host pwd=/work x=1 args=arg1,",
            "banger-init: the workload exited",
        ),
        // The agent got its port and was not restarted after exit 69.
        (
            "AGENT --port 4242",
            "banger-vsock-agent exited with status 69; not restarting it",
        ),
    ] {
        let at = log
            .find(first)
            .unwrap_or_else(|| panic!("{first:?} missing in:\n{log}"));
        assert!(
            log[at..].contains(then),
            "{then:?} not after {first:?} in:\n{log}"
        );
    }
}

#[test]
fn sigterm_shuts_down_and_the_guest_outlives_its_workload() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPING pid1 namespace test: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    // Root's workload exits at once; an orphan it leaves sends SIGTERM to
    // PID 1 a second later. No agent, no first boot, no ip=.
    let config = serde_json::json!({
        "vsock_port": 52,
        "cmd": ["sh", "-c", "(sleep 1; echo SENDING-SIGTERM; kill -TERM 1) & exit 0"],
    });
    write(
        &stage.join("root/etc/banger/init.json"),
        &config.to_string(),
        0o644,
    );
    fs::create_dir_all(stage.join("local")).unwrap();
    write(&stage.join("cmdline"), "console=ttyS0 quiet\n", 0o644);
    let log = boot(dir.path(), &stage);
    assert_in_order(
        &log,
        &[
            "banger-init: no host name in ip= or /etc/hostname",
            "banger-init: network: no ip= on the kernel command line; nothing to do",
            "banger-init: /usr/local/bin/banger-vsock-agent is missing; no vsock agent",
            "banger-init: started the workload",
            "banger-init: the workload exited with status 0",
            "SENDING-SIGTERM",
            "banger-init: shutdown: signal 15 received",
            "banger-init: shutdown: no more restarts",
            "banger-init: shutdown: sending SIGTERM to all processes",
            "banger-init: shutdown: waiting up to 5s for processes to exit",
            "banger-init: shutdown: syncing filesystems",
            "banger-init: shutdown: remounted / read-only",
            "banger-init: shutdown: syncing filesystems",
            "banger-init: shutdown: powering off",
        ],
    );
    // Everything exited on SIGTERM: no SIGKILL.
    assert!(!log.contains("SIGKILL"), "{log}");
}
