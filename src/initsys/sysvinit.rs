//! sysvinit with sysv-rc (Debian, Devuan): LSB init scripts in
//! `/etc/init.d` and what `update-rc.d NAME defaults` makes of them.
//!
//! The scripts (`assets/sysvinit/`) are plain POSIX sh that works under
//! dash and busybox sh without `/lib/lsb/init-functions` or
//! start-stop-daemon. Their headers:
//!
//! | script | Required-Start | Default-Start | Default-Stop |
//! |---|---|---|---|
//! | banger-network | `$local_fs` | 2 3 4 5 | |
//! | banger-vsock-agent | `$local_fs` | 2 3 4 5 | 0 1 6 |
//! | banger-first-boot | `$remote_fs banger-network` (`X-Start-Before: sshd`, the name Debian's `ssh` script provides) | 2 3 4 5 | |
//!
//! `update-rc.d` is emulated as Debian bookworm runs it, for the three
//! scripts in dependency order: with insserv installed (`/sbin/insserv` or
//! `/usr/lib/insserv/insserv`, and `/etc/insserv.conf`) by
//! [`super::insserv`], which may renumber other scripts' links; without it,
//! by `update-rc.d`'s own fallback, `S01NAME`/`K01NAME` links for a script
//! that has none.
//!
//! The vsock modules are listed in `/etc/modules-load.d`. Debian's `kmod`
//! init script (rcS) loads that directory; when the image has no enabled
//! `kmod` script that does, the network and agent scripts first run
//! `banger-init modules`.

use super::files::{is_dir, list_sorted, read_file, resolve, EntryKind, ImageFiles};
use super::insserv::{update_rc_d, NewScript};
use super::lsb::{scan, Scanned};
use super::{fill, InitSysError, ServiceFile, MODE_DATA, MODE_EXEC, SERVICE_NAMES};

/// Where the scripts go.
pub const INIT_D: &str = "/etc/init.d";

const NETWORK: &str = include_str!("../../assets/sysvinit/banger-network");
const AGENT: &str = include_str!("../../assets/sysvinit/banger-vsock-agent");
const FIRST_BOOT: &str = include_str!("../../assets/sysvinit/banger-first-boot");

/// The script templates, by name, in [`SERVICE_NAMES`] order.
pub(super) const TEMPLATES: [(&str, &str); 3] = [
    (SERVICE_NAMES[0], NETWORK),
    (SERVICE_NAMES[1], AGENT),
    (SERVICE_NAMES[2], FIRST_BOOT),
];

/// Runlevel directory keys, as `update-rc.d` names them.
const LEVELS: [char; 8] = ['0', '1', '2', '3', '4', '5', '6', 'S'];

/// Scripts, links and `.depend` files for a sysvinit image.
pub(super) fn service_files(
    files: &mut dyn ImageFiles,
    vsock_port: u32,
) -> Result<Vec<ServiceFile>, InitSysError> {
    let load_modules = !kmod_loads_modules_load_d(files);
    let scripts: Vec<(&str, Vec<u8>)> = TEMPLATES
        .iter()
        .map(|(name, text)| (*name, fill(text, vsock_port, load_modules)))
        .collect();
    let mut out: Vec<ServiceFile> = scripts
        .iter()
        .map(|(name, text)| ServiceFile::file(format!("{INIT_D}/{name}"), MODE_EXEC, text.clone()))
        .collect();
    if insserv_installed(files) {
        let new: Vec<NewScript<'_>> = scripts
            .iter()
            .map(|(name, text)| NewScript { name, text })
            .collect();
        let plan = update_rc_d(files, &new)?;
        out.extend(
            plan.depend
                .into_iter()
                .map(|(path, text)| ServiceFile::file(path, MODE_DATA, text)),
        );
        out.extend(plan.remove.into_iter().map(ServiceFile::remove));
        out.extend(
            plan.links
                .into_iter()
                .map(|(path, target)| ServiceFile::symlink(path, target)),
        );
    } else {
        for (name, text) in &scripts {
            out.extend(plain_links(files, name, text));
        }
    }
    Ok(out)
}

/// `update-rc.d`'s test: an executable insserv and its configuration.
fn insserv_installed(files: &mut dyn ImageFiles) -> bool {
    let executable = |files: &mut dyn ImageFiles, path: &str| matches!(resolve(files, path), Ok(r) if matches!(r.kind, EntryKind::File { mode } if mode & 0o111 != 0));
    (executable(files, "/usr/lib/insserv/insserv") || executable(files, "/sbin/insserv"))
        && resolve(files, "/etc/insserv.conf").is_ok()
}

/// `make_sysv_links`: without insserv, `update-rc.d` links a script that
/// has no links yet as `S01NAME` in its `Default-Start` runlevels and
/// `K01NAME` in its `Default-Stop` ones, and leaves one that has any alone.
fn plain_links(files: &mut dyn ImageFiles, name: &str, text: &[u8]) -> Vec<ServiceFile> {
    let linked = LEVELS.iter().any(|key| {
        list_sorted(files, &format!("/etc/rc{key}.d"))
            .iter()
            .any(|f| is_link_of(f, name))
    });
    if linked {
        return Vec::new();
    }
    let Scanned::Header(h) = scan(text) else {
        return Vec::new();
    };
    let levels = |v: &Option<String>| -> Vec<String> {
        v.as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let target = format!("../init.d/{name}");
    let mut out = Vec::new();
    for (kind, list) in [
        ('S', levels(&h.default_start)),
        ('K', levels(&h.default_stop)),
    ] {
        for level in list {
            let path = format!("/etc/rc{level}.d/{kind}01{name}");
            out.push(ServiceFile::symlink(path, target.clone()));
        }
    }
    out
}

/// `[SK][0-9][0-9]NAME`, the glob `update-rc.d` uses.
fn is_link_of(file: &str, name: &str) -> bool {
    let b = file.as_bytes();
    b.len() == name.len() + 3
        && (b[0] == b'S' || b[0] == b'K')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && &file[3..] == name
}

/// Whether an enabled `kmod` init script (an `S` link in rcS.d) loads
/// `/etc/modules-load.d`, as Debian's does.
pub(super) fn kmod_loads_modules_load_d(files: &mut dyn ImageFiles) -> bool {
    let enabled = is_dir(files, "/etc/rcS.d")
        && list_sorted(files, "/etc/rcS.d")
            .iter()
            .any(|f| f.starts_with('S') && is_link_of(f, "kmod"));
    enabled
        && read_file(files, "/etc/init.d/kmod", 1 << 20)
            .is_some_and(|b| b.windows(14).any(|w| w == b"modules-load.d"))
}

#[cfg(test)]
mod tests {
    use super::super::files::MemFiles;
    use super::super::ServiceContent;
    use super::*;

    fn text(out: &[ServiceFile], path: &str) -> String {
        let f = out.iter().find(|f| f.path == path).unwrap();
        let ServiceContent::File(b) = &f.content else {
            panic!("{path} is not a file")
        };
        String::from_utf8(b.clone()).unwrap()
    }

    #[test]
    fn without_insserv_update_rc_d_makes_01_links() {
        let mut files = MemFiles::new();
        files.dir("/etc/init.d").dir("/etc/rc2.d");
        let out = service_files(&mut files, 52).unwrap();
        let links: Vec<(&str, &str)> = out
            .iter()
            .filter_map(|f| match &f.content {
                ServiceContent::Symlink(t) => Some((f.path.as_str(), t.as_str())),
                _ => None,
            })
            .collect();
        assert!(links.contains(&("/etc/rc2.d/S01banger-network", "../init.d/banger-network")));
        assert!(links.contains(&(
            "/etc/rc0.d/K01banger-vsock-agent",
            "../init.d/banger-vsock-agent"
        )));
        assert!(!links.iter().any(|(p, _)| p.contains("K01banger-network")));
        assert_eq!(links.len(), 4 + 4 + 3 + 4);
        assert!(text(&out, "/etc/init.d/banger-vsock-agent").contains("PORT=52\n"));
        assert!(text(&out, "/etc/init.d/banger-network").contains("LOAD_MODULES=yes\n"));

        // A script with links already keeps them.
        files.symlink("/etc/rc3.d/S05banger-network", "../init.d/banger-network");
        let out = service_files(&mut files, 52).unwrap();
        assert!(!out.iter().any(|f| f.path.ends_with("S01banger-network")));
    }

    #[test]
    fn an_enabled_kmod_script_loads_the_modules() {
        let mut files = MemFiles::new();
        files.exec(
            "/etc/init.d/kmod",
            "local modules_load_dirs='/etc/modules-load.d /run/modules-load.d'\n",
        );
        assert!(!kmod_loads_modules_load_d(&mut files), "not enabled");
        files.symlink("/etc/rcS.d/S01kmod", "../init.d/kmod");
        assert!(kmod_loads_modules_load_d(&mut files));
        let out = service_files(&mut files, 7).unwrap();
        assert!(text(&out, "/etc/init.d/banger-network").contains("LOAD_MODULES=no\n"));
    }

    #[test]
    fn link_globs() {
        assert!(is_link_of("S01kmod", "kmod"));
        assert!(is_link_of("K99kmod", "kmod"));
        assert!(!is_link_of("S1kmod", "kmod"));
        assert!(!is_link_of("S01kmod2", "kmod"));
        assert!(!is_link_of("X01kmod", "kmod"));
    }
}
