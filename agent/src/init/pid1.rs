//! banger-init as PID 1: steps 1 to 4 in order, then the
//! [`supervisor`](super::supervisor) loop.

use std::fs;
use std::path::Path;

use super::accounts::{group_id, parse_group};
use super::cmdline::Cmdline;
use super::config::{InitConfig, INIT_CONFIG_PATH};
use super::signals::{self, Signals};
use super::supervisor::Init;
use super::{hostname, modules, mounts, network};
use crate::say;

/// Makes sure descriptors 0, 1 and 2 are open: on `/dev/console`, or on
/// `/` (writes fail harmlessly) until `/dev` is mounted. Returns which
/// ones hold the `/` placeholder.
fn fill_standard_fds() -> [bool; 3] {
    let mut placeholders = [false; 3];
    for (fd, placeholder) in placeholders.iter_mut().enumerate() {
        // SAFETY: plain syscalls on descriptor numbers and C strings.
        unsafe {
            if libc::fcntl(fd as libc::c_int, libc::F_GETFD) >= 0 {
                continue;
            }
            let console = libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            let opened = if console >= 0 {
                console
            } else {
                *placeholder = true;
                libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY)
            };
            if opened >= 0 && opened != fd as libc::c_int {
                libc::dup2(opened, fd as libc::c_int);
                libc::close(opened);
            }
        }
    }
    placeholders
}

/// Replaces the placeholders with `/dev/console` once `/dev` is mounted.
fn attach_console(placeholders: [bool; 3]) {
    if !placeholders.contains(&true) {
        return;
    }
    // SAFETY: plain syscalls on descriptor numbers and a C string.
    unsafe {
        let console = libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        if console < 0 {
            return;
        }
        for (fd, placeholder) in placeholders.iter().enumerate() {
            if *placeholder {
                libc::dup2(console, fd as libc::c_int);
            }
        }
        if console > 2 {
            libc::close(console);
        }
    }
}

/// Boots the guest and never returns.
pub fn main() -> ! {
    let placeholders = fill_standard_fds();
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            say!("fatal: cannot set up signals: {e}; halting");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    };
    say!(
        "banger-init {} starting as PID 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Err(e) = signals::disable_ctrl_alt_del() {
        say!("warning: cannot route ctrl-alt-del to SIGINT: {e}");
    }

    // 1. filesystems.
    let groups = parse_group(&fs::read_to_string("/etc/group").unwrap_or_default());
    mounts::run(group_id(&groups, "tty"));
    attach_console(placeholders);

    let cmdline = Cmdline::parse(&fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| {
        say!("warning: cannot read /proc/cmdline: {e}");
        String::new()
    }));

    // 2. host name.
    let from_ip = match cmdline.ip() {
        Some(Ok(super::cmdline::IpSpec::Static(ip))) => ip.hostname,
        _ => None,
    };
    let etc_hostname = fs::read_to_string("/etc/hostname").ok();
    match hostname::choose(from_ip.as_deref(), etc_hostname.as_deref()) {
        Some(name) => match hostname::set(Path::new("/"), &name) {
            Ok(_) => say!("host name: {name}"),
            Err(e) => say!("warning: cannot set the host name to {name:?}: {e}"),
        },
        None => say!("no host name in ip= or /etc/hostname"),
    }

    // 3. modules, 4. network.
    modules::run(Path::new("/"), &cmdline);
    if !network::run(&cmdline, &network::NetworkSetup::default()) {
        say!("warning: the network is not fully configured");
    }

    let config = match InitConfig::read(Path::new(INIT_CONFIG_PATH)) {
        Ok(config) => config,
        Err(e) => {
            say!(
                "warning: cannot read {INIT_CONFIG_PATH}: {e}; agent on port {}, no workload",
                crate::DEFAULT_PORT
            );
            InitConfig {
                vsock_port: crate::DEFAULT_PORT,
                ..InitConfig::default()
            }
        }
    };
    // 5. to 10.
    Init::new(signals, config, cmdline.workload_exit()).run()
}
