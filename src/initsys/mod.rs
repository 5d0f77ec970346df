//! banger's guest services for init systems other than systemd.
//!
//! Three services run in every guest: **network** (a one-shot,
//! `banger-init network`), the **vsock agent** (a daemon that exits 69
//! without vsock) and **first boot** (a one-shot while
//! `/var/lib/banger/first-boot-pending` exists; it installs OpenSSH and
//! needs the network). [`detect()`] finds out which init system an image boots
//! with; [`service_files`] returns the files that system's own tools would
//! have written to enable the three services:
//!
//! | system | files |
//! |---|---|
//! | sysvinit | `/etc/init.d/banger-*` LSB scripts, the `/etc/rc?.d` links and `.depend.*` files `update-rc.d NAME defaults` (insserv) makes |
//! | OpenRC | `/etc/init.d/banger-*` openrc-run scripts, `/etc/runlevels/default/banger-*` as `rc-update add NAME default` makes them |
//! | busybox | wrappers in `/usr/local/lib/banger/busybox/` and lines in `/etc/inittab` |
//!
//! systemd units are still written by [`crate::inject`], as are the files
//! every system shares (the agent, `first-boot.sh`, the marker, the
//! modules-load.d list); this module only adds what is specific to the
//! other systems.
//!
//! Everything here reads the image through [`ImageFiles`], which the caller
//! implements over its in-memory tree; nothing runs in or against a real
//! root.

mod busybox;
pub mod detect;
pub mod files;
mod insserv;
mod lsb;
mod openrc;
mod sysvinit;

pub use busybox::{inittab, BUSYBOX_DEFAULT_INITTAB, BUSYBOX_DIR, INITTAB_PATH};
pub use detect::{detect, parse_choice, Detection, InitChoice, InitSystem};
pub use files::{EntryKind, ImageFiles, MemEntry, MemFiles};

/// banger's own guest helper (static; written by other code): `network`
/// configures the interface from `ip=`, `modules` loads the
/// `/etc/modules-load.d` list without kmod.
pub const BANGER_INIT_PATH: &str = "/usr/local/sbin/banger-init";
/// Service names, in dependency order (the order `update-rc.d` must see
/// them in: first boot requires the network).
pub const SERVICE_NAMES: [&str; 3] = ["banger-network", "banger-vsock-agent", "banger-first-boot"];

/// Mode of scripts.
const MODE_EXEC: u16 = 0o755;
/// Mode of data files.
const MODE_DATA: u16 = 0o644;
/// Mode the kernel reports for every symlink.
const MODE_SYMLINK: u16 = 0o777;

/// What to do at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceContent {
    /// Write a regular file with these bytes.
    File(Vec<u8>),
    /// Make a symlink with this target.
    Symlink(String),
    /// Delete what is there (a link insserv renumbers or finds dangling).
    Remove,
}

/// One path [`service_files`] writes or removes; owner root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFile {
    /// Absolute guest path.
    pub path: String,
    /// Permission bits (0 for [`ServiceContent::Remove`]).
    pub mode: u16,
    /// What goes there.
    pub content: ServiceContent,
}

impl ServiceFile {
    fn file(path: impl Into<String>, mode: u16, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            mode,
            content: ServiceContent::File(bytes.into()),
        }
    }

    fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: MODE_SYMLINK,
            content: ServiceContent::Symlink(target.into()),
        }
    }

    fn remove(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: 0,
            content: ServiceContent::Remove,
        }
    }
}

/// Why no service files can be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InitSysError {
    /// A `--init` value that is none of the known ones.
    #[error("unknown init system {0:?} (auto, systemd, sysvinit, openrc, busybox, banger)")]
    UnknownChoice(String),
    /// banger writes nothing for this system here.
    #[error("no service files for {system}: {reason}")]
    Unsupported {
        /// The system asked for.
        system: InitSystem,
        /// Why, and what to do instead.
        reason: String,
    },
    /// An existing script in `/etc/init.d` already provides a name one of
    /// banger's scripts provides; insserv would not link banger's.
    #[error("service {service} is already provided by /etc/init.d/{script}")]
    AlreadyProvided {
        /// The LSB `Provides` name.
        service: String,
        /// The script providing it.
        script: String,
    },
    /// The boot order would need more than two digits.
    #[error("the boot order would exceed insserv's maximum of 99")]
    TooDeep,
}

/// The files that enable banger's three services on `system`, in write
/// order: contents first, then removals, then symlinks. `vsock_port` is
/// the agent's `--port`.
pub fn service_files(
    system: &InitSystem,
    files: &mut dyn ImageFiles,
    vsock_port: u32,
) -> Result<Vec<ServiceFile>, InitSysError> {
    let unsupported = |reason: &str| InitSysError::Unsupported {
        system: system.clone(),
        reason: reason.to_owned(),
    };
    let mut out = match system {
        InitSystem::SysVinit => sysvinit::service_files(files, vsock_port)?,
        InitSystem::OpenRc => openrc::service_files(files, vsock_port),
        InitSystem::Busybox => busybox::service_files(files, vsock_port),
        InitSystem::Systemd => return Err(unsupported("systemd units are written by inject")),
        InitSystem::Runit => {
            return Err(unsupported(
                "runit services are not supported; use --init banger",
            ))
        }
        InitSystem::None => return Err(unsupported("the image has no init; use --init banger")),
        InitSystem::Unknown(_) => {
            return Err(unsupported(
                "unknown init system; use --init banger or name one",
            ))
        }
    };
    // Stable: each group keeps its own order.
    out.sort_by_key(|f| match f.content {
        ServiceContent::File(_) => 0,
        ServiceContent::Remove => 1,
        ServiceContent::Symlink(_) => 2,
    });
    Ok(out)
}

/// A template from `assets/` with its placeholders filled in.
fn fill(template: &str, vsock_port: u32, load_modules: bool) -> Vec<u8> {
    template
        .replace("@VSOCK_PORT@", &vsock_port.to_string())
        .replace("@LOAD_MODULES@", if load_modules { "yes" } else { "no" })
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_none_unknown_and_runit_are_refused() {
        let mut files = MemFiles::new();
        for system in [
            InitSystem::Systemd,
            InitSystem::None,
            InitSystem::Runit,
            InitSystem::Unknown("x".into()),
        ] {
            let err = service_files(&system, &mut files, 52).unwrap_err();
            assert!(matches!(err, InitSysError::Unsupported { .. }), "{err}");
        }
    }

    #[test]
    fn files_come_before_removals_before_links() {
        let mut files = MemFiles::new();
        files.dir("/etc/init.d").dir("/etc/runlevels/default");
        let out = service_files(&InitSystem::OpenRc, &mut files, 52).unwrap();
        let kinds: Vec<u8> = out
            .iter()
            .map(|f| match f.content {
                ServiceContent::File(_) => 0,
                ServiceContent::Remove => 1,
                ServiceContent::Symlink(_) => 2,
            })
            .collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(kinds, sorted);
        assert!(kinds.contains(&0) && kinds.contains(&2));
    }

    #[test]
    fn every_network_script_runs_banger_init() {
        for text in [
            sysvinit::TEMPLATES[0].1,
            openrc::TEMPLATES[0].1,
            busybox::WRAPPERS[0].2,
        ] {
            // Either spelled out or through a variable holding the path.
            let runs = |verb: &str| {
                text.contains(&format!("{BANGER_INIT_PATH} {verb}"))
                    || (text.contains(&format!("BANGER_INIT={BANGER_INIT_PATH}\n"))
                        && text.contains(&format!("\"$BANGER_INIT\" {verb}")))
            };
            assert!(runs("network") && runs("modules"), "{text}");
        }
        for text in [
            sysvinit::TEMPLATES[2].1,
            openrc::TEMPLATES[2].1,
            busybox::WRAPPERS[1].2,
        ] {
            assert!(
                text.contains("/usr/local/lib/banger/first-boot.sh"),
                "{text}"
            );
            assert!(
                text.contains("/var/lib/banger/first-boot-pending"),
                "{text}"
            );
        }
    }

    #[test]
    fn templates_are_filled() {
        let text = String::from_utf8(fill("p=@VSOCK_PORT@ m=@LOAD_MODULES@", 1234, true)).unwrap();
        assert_eq!(text, "p=1234 m=yes");
    }
}
