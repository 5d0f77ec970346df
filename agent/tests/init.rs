//! banger-init outside a VM: its command line, and `network` for real over
//! rtnetlink in a fresh network namespace (root only; skipped otherwise).

use std::ffi::CStr;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use banger_vsock_agent::init::cmdline::{parse_ip, IpSpec, StaticIp};
use banger_vsock_agent::init::network::{self, NetworkSetup};

const INIT: &str = env!("CARGO_BIN_EXE_banger-init");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_version_and_usage_errors() {
    let out = Command::new(INIT).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out).starts_with("usage: banger-init [network | modules"),
        "{}",
        text(&out)
    );
    let out = Command::new(INIT).arg("--version").output().unwrap();
    assert_eq!(
        text(&out).trim(),
        format!("banger-init {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(INIT).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out).contains("banger-init: not running as PID 1"),
        "{}",
        text(&out)
    );
    let out = Command::new(INIT)
        .args(["network", "extra"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

fn run_network(dir: &Path, cmdline: &str, netns: bool) -> Output {
    fs::write(dir.join("cmdline"), cmdline).unwrap();
    let mut command = Command::new(INIT);
    command
        .arg("network")
        .env("BANGER_CMDLINE", dir.join("cmdline"))
        .env("BANGER_ROOT", dir.join("root"))
        .env("BANGER_NET_WAIT", "0");
    if netns {
        // SAFETY: the hook makes one system call.
        unsafe {
            command.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.output().unwrap()
}

#[test]
fn network_without_a_static_ip_does_nothing_and_bad_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    for (cmdline, code, message) in [
        (
            "console=ttyS0 quiet\n",
            0,
            "no ip= on the kernel command line; nothing to do",
        ),
        ("ip=dhcp\n", 0, "ip=dhcp is not a static configuration"),
        (
            "ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:dhcp\n",
            0,
            "asks for autoconf 'dhcp'",
        ),
        (
            "ip=10.0.0.2::10.0.0.1:255.0.255.0::eth0:off\n",
            1,
            "invalid netmask \"255.0.255.0\"",
        ),
        ("ip=nonsense:::\n", 1, "no valid client address"),
    ] {
        let out = run_network(dir.path(), cmdline, false);
        assert_eq!(out.status.code(), Some(code), "{cmdline}: {}", text(&out));
        assert!(text(&out).contains(message), "{cmdline}: {}", text(&out));
    }
    let out = Command::new(INIT)
        .arg("network")
        .env("BANGER_CMDLINE", dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
}

/// Whether this process may make network namespaces; says why not.
fn can_unshare_net() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPING netlink test: needs root for unshare(CLONE_NEWNET)");
        return false;
    }
    true
}

fn fake_root(dir: &Path) {
    let root = dir.join("root");
    fs::create_dir_all(root.join("sys/class/net/lo")).unwrap();
    fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("proc/sys/kernel/hostname"), "old\n").unwrap();
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        root.join("etc/resolv.conf"),
    )
    .unwrap();
}

#[test]
fn the_network_subcommand_configures_lo_in_a_fresh_namespace() {
    if !can_unshare_net() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fake_root(dir.path());
    let out = run_network(
        dir.path(),
        "console=ttyS0 ip=10.9.0.2::10.9.0.1:255.255.255.0:vm-test:lo:off:1.1.1.1:8.8.8.8\n",
        true,
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for line in [
        "banger-init: network: added 10.9.0.2/24 to lo",
        "banger-init: network: default route via 10.9.0.1 dev lo",
        "banger-init: network: host name set to vm-test",
        "banger-init: network: wrote /etc/resolv.conf",
    ] {
        assert!(log.contains(line), "{line} missing from {log}");
    }
    let root = dir.path().join("root");
    assert_eq!(
        fs::read_to_string(root.join("proc/sys/kernel/hostname")).unwrap(),
        "vm-test\n"
    );
    let resolv = root.join("etc/resolv.conf");
    assert!(fs::symlink_metadata(&resolv).unwrap().is_file());
    assert_eq!(
        fs::read_to_string(resolv).unwrap(),
        "# Written by banger-init from the kernel command line (ip=).\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
    );

    // An unreachable gateway is the kernel's error, reported.
    let out = run_network(
        dir.path(),
        "ip=10.9.0.2::10.8.0.1:255.255.255.0::lo:off\n",
        true,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("configuring lo failed: Network is unreachable"),
        "{}",
        text(&out)
    );
}

/// The IPv4 addresses of `name` in the calling thread's namespace.
fn addresses(name: &str) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    // SAFETY: getifaddrs fills a list that is walked read-only and freed.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        assert_eq!(libc::getifaddrs(&mut list), 0);
        let mut entry = list;
        while !entry.is_null() {
            let addr = (*entry).ifa_addr;
            if !addr.is_null()
                && i32::from((*addr).sa_family) == libc::AF_INET
                && CStr::from_ptr((*entry).ifa_name).to_str() == Ok(name)
            {
                let sin = addr as *const libc::sockaddr_in;
                found.push(Ipv4Addr::from(u32::from_be((*sin).sin_addr.s_addr)));
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

#[test]
fn apply_is_idempotent_and_reads_back_over_netlink() {
    if !can_unshare_net() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fake_root(dir.path());
    let IpSpec::Static(ip) = parse_ip("10.7.0.5::10.7.0.1:255.255.0.0::lo:off").unwrap() else {
        panic!("not static")
    };
    let root = dir.path().join("root");
    // unshare() moves only the calling thread: do it in a thread of our own.
    std::thread::spawn(move || {
        // SAFETY: plain syscall; affects this thread only.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        assert!(addresses("lo").is_empty());
        let setup = NetworkSetup {
            root,
            wait: Duration::ZERO,
        };
        let ip: StaticIp = ip;
        assert!(network::apply(&ip, &setup));
        // lo is up: the kernel added 127.0.0.1 itself.
        assert_eq!(
            addresses("lo"),
            ["127.0.0.1".parse::<Ipv4Addr>().unwrap(), ip.client]
        );
        let routes = fs::read_to_string("/proc/thread-self/net/route").unwrap();
        // Destination 0.0.0.0, gateway 10.7.0.1, as the kernel prints them.
        assert!(
            routes
                .lines()
                .any(|l| l.starts_with("lo\t00000000\t0100070A\t")),
            "{routes}"
        );
        // Again: EEXIST on the address is fine, the route is replaced.
        assert!(network::apply(&ip, &setup));
        assert_eq!(addresses("lo").len(), 2);
    })
    .join()
    .unwrap();
}
