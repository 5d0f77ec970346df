//! Step 4: the kernel's static `ip=` over rtnetlink, then the host name
//! and `/etc/resolv.conf`, with the semantics `assets/banger-network.sh`
//! documents. Needs no tool from the image.

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::cmdline::{Cmdline, IpSpec, StaticIp};
use super::hostname;
use super::netlink::Netlink;
use crate::say;

/// How long to wait for an interface to appear unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Where the configuration goes.
#[derive(Clone, Debug)]
pub struct NetworkSetup {
    /// Prefix of `/sys/class/net`, `/proc/sys/kernel/hostname` and
    /// `/etc/resolv.conf` (`/` in a guest; a temporary directory in tests).
    /// Netlink always acts on the calling thread's network namespace.
    pub root: PathBuf,
    /// How long to wait for the interface to appear.
    pub wait: Duration,
}

impl Default for NetworkSetup {
    fn default() -> Self {
        Self {
            root: "/".into(),
            wait: DEFAULT_WAIT,
        }
    }
}

/// Applies the `ip=` of `cmdline`. Returns whether everything asked for
/// was done (no `ip=`, or a DHCP one, asks for nothing).
pub fn run(cmdline: &Cmdline, setup: &NetworkSetup) -> bool {
    match cmdline.ip() {
        None => {
            say!("network: no ip= on the kernel command line; nothing to do");
            true
        }
        Some(Err(e)) => {
            say!("network: {e}");
            false
        }
        Some(Ok(IpSpec::NotStatic(spec))) => {
            say!("network: ip={spec} is not a static configuration; leaving it to DHCP");
            true
        }
        Some(Ok(IpSpec::Autoconf(mode))) => {
            say!("network: ip= asks for autoconf '{mode}'; leaving it to DHCP");
            true
        }
        Some(Ok(IpSpec::Static(ip))) => apply(&ip, setup),
    }
}

/// Configures `lo` and the interface of `ip`, then the host name and DNS.
pub fn apply(ip: &StaticIp, setup: &NetworkSetup) -> bool {
    let mut ok = match Netlink::open() {
        Ok(mut netlink) => configure_links(&mut netlink, ip, setup),
        Err(e) => {
            say!("network: cannot open a netlink socket: {e}");
            false
        }
    };
    if let Some(name) = &ip.hostname {
        match hostname::set(&setup.root, name) {
            Ok(true) => say!("network: host name set to {name}"),
            Ok(false) => {}
            Err(e) => {
                say!("network: cannot set the host name to {name:?}: {e}");
                ok = false;
            }
        }
    }
    match write_resolv_conf(&setup.root.join("etc/resolv.conf"), &ip.dns) {
        Ok(true) => say!("network: wrote /etc/resolv.conf"),
        Ok(false) => {}
        Err(e) => {
            say!("network: cannot write /etc/resolv.conf: {e}");
            ok = false;
        }
    }
    ok
}

fn configure_links(netlink: &mut Netlink, ip: &StaticIp, setup: &NetworkSetup) -> bool {
    let mut ok = true;
    match index_of("lo").map(|lo| netlink.link_up(lo)) {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            say!("network: cannot bring lo up: {e}");
            ok = false;
        }
        None => say!("network: there is no lo interface"),
    }
    let deadline = Instant::now() + setup.wait;
    loop {
        let picked = pick_interface(ip.device.as_deref(), &setup.root)
            .and_then(|name| Some((index_of(&name)?, name)));
        if let Some((index, name)) = picked {
            match configure(netlink, index, &name, ip) {
                Ok(()) => return ok,
                // Renamed or removed between the pick and its use: pick again.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                Err(e) => {
                    say!("network: configuring {name} failed: {e}");
                    return false;
                }
            }
        }
        if Instant::now() >= deadline {
            let which = ip.device.as_deref().unwrap_or("other than lo");
            say!("network: network interface {which} did not appear");
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn configure(netlink: &mut Netlink, index: u32, name: &str, ip: &StaticIp) -> io::Result<()> {
    netlink.link_up(index)?;
    let cidr = format!("{}/{}", ip.client, ip.prefix);
    if netlink.add_address(index, ip.client, ip.prefix)? {
        say!("network: added {cidr} to {name}");
    } else {
        say!("network: {name} already has {cidr}");
    }
    if let Some(gateway) = ip.gateway {
        netlink.replace_default_route(index, gateway)?;
        say!("network: default route via {gateway} dev {name}");
    }
    Ok(())
}

fn index_of(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: passes a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// `device` if it exists, or without one the first interface other than
/// `lo` in name order; `None` if there is none (yet).
pub fn pick_interface(device: Option<&str>, root: &Path) -> Option<String> {
    let names = interfaces(root);
    match device {
        Some(device) => names.into_iter().find(|name| name == device),
        None => names.into_iter().find(|name| name != "lo"),
    }
}

/// The interfaces in `/sys/class/net` (directories only: `bonding_masters`
/// is a file), sorted by name; from `if_nameindex()` when `/sys` is not
/// mounted.
pub fn interfaces(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(root.join("sys/class/net")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect(),
        Err(_) if root == Path::new("/") => kernel_interfaces(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn kernel_interfaces() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, or null;
    // it is freed once read.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            names.push(
                std::ffi::CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}

/// The resolv.conf for `dns`, or `None` without servers.
pub fn resolv_conf(dns: &[Ipv4Addr]) -> Option<String> {
    if dns.is_empty() {
        return None;
    }
    let mut text = String::from("# Written by banger-init from the kernel command line (ip=).\n");
    for server in dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    Some(text)
}

/// Writes `path` for `dns` (through a temporary file and a rename, which
/// replaces a symlink) unless it is a regular file with that content or
/// there are no servers. `Ok(true)` if it wrote.
pub fn write_resolv_conf(path: &Path, dns: &[Ipv4Addr]) -> io::Result<bool> {
    let Some(content) = resolv_conf(dns) else {
        return Ok(false);
    };
    let is_file = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if is_file && fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let tmp = path.with_file_name(".resolv.conf.banger-init");
    let result = fs::write(&tmp, content).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_choice() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("sys/class/net");
        assert_eq!(pick_interface(None, dir.path()), None);
        for name in ["lo", "eth1", "ens3"] {
            fs::create_dir_all(net.join(name)).unwrap();
        }
        fs::write(net.join("bonding_masters"), "").unwrap();
        assert_eq!(interfaces(dir.path()), ["ens3", "eth1", "lo"]);
        assert_eq!(pick_interface(None, dir.path()).as_deref(), Some("ens3"));
        assert_eq!(
            pick_interface(Some("eth1"), dir.path()).as_deref(),
            Some("eth1")
        );
        assert_eq!(
            pick_interface(Some("lo"), dir.path()).as_deref(),
            Some("lo")
        );
        assert_eq!(pick_interface(Some("eth0"), dir.path()), None);
    }

    #[test]
    fn resolv_conf_is_written_once_and_replaces_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let dns: Vec<Ipv4Addr> = vec!["1.1.1.1".parse().unwrap(), "8.8.8.8".parse().unwrap()];
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", &path).unwrap();
        assert!(write_resolv_conf(&path, &dns).unwrap());
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# Written by banger-init from the kernel command line (ip=).\n\
             nameserver 1.1.1.1\nnameserver 8.8.8.8\n"
        );
        assert!(!write_resolv_conf(&path, &dns).unwrap());
        // No servers: left alone.
        fs::write(&path, "nameserver 9.9.9.9\n").unwrap();
        assert!(!write_resolv_conf(&path, &[]).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 9.9.9.9\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
