//! Which init system an image boots with, decided from its own files.
//!
//! The kernel runs `/sbin/init` (following symlinks, merged-usr
//! `/sbin -> usr/sbin` included), so that is where the decision starts:
//!
//! | `/sbin/init` leads to | and | system |
//! |---|---|---|
//! | nothing (missing, dangling) | | [`InitSystem::None`] |
//! | a file named `systemd` | | [`InitSystem::Systemd`] |
//! | a file named `openrc-init` | | [`InitSystem::OpenRc`] |
//! | a file named `runit-init` or `runit` | | [`InitSystem::Runit`] |
//! | any file | `openrc` in `/sbin` or `/usr/sbin`, and `/etc/runlevels` | [`InitSystem::OpenRc`] |
//! | a file named `busybox` | | [`InitSystem::Busybox`] |
//! | another regular file | `/etc/inittab`, `/etc/init.d` | [`InitSystem::SysVinit`] |
//! | anything else | | [`InitSystem::Unknown`] |
//!
//! The OpenRC row covers both ways OpenRC runs without being PID 1:
//! Alpine's busybox init starting `openrc sysinit` from its inittab, and
//! Debian's `openrc` package under sysvinit-core's `/sbin/init`.

use std::fmt;

use super::files::{is_dir, is_file, resolve, EntryKind, ImageFiles, Unresolved};
use super::InitSysError;

/// An init system banger knows how to install services for (or not).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InitSystem {
    /// systemd as PID 1: units, written by `crate::inject`.
    Systemd,
    /// sysvinit with sysv-rc: `/etc/init.d` scripts and `/etc/rcN.d` links.
    SysVinit,
    /// OpenRC (under busybox init, sysvinit or openrc-init).
    OpenRc,
    /// busybox init: `/etc/inittab` lines only.
    Busybox,
    /// runit: detected, but banger writes no services for it.
    Runit,
    /// No init at all: the kernel would fall back to `/bin/sh`.
    None,
    /// Something banger does not know; the text says what.
    Unknown(String),
}

impl fmt::Display for InitSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Systemd => f.write_str("systemd"),
            Self::SysVinit => f.write_str("sysvinit"),
            Self::OpenRc => f.write_str("openrc"),
            Self::Busybox => f.write_str("busybox"),
            Self::Runit => f.write_str("runit"),
            Self::None => f.write_str("none"),
            Self::Unknown(what) => write!(f, "unknown ({what})"),
        }
    }
}

/// The detected system and the files that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// What the image boots with.
    pub system: InitSystem,
    /// Why, one fact per entry, e.g. `/sbin -> usr/sbin` or
    /// `/etc/runlevels is a directory`; for warnings and `image show`.
    pub evidence: Vec<String>,
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.system, self.evidence.join("; "))
    }
}

/// What `--init` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitChoice {
    /// Detect the image's own init system.
    Auto,
    /// Install services for this system, whatever the image has.
    Use(InitSystem),
    /// Boot with banger's own init instead (installed elsewhere).
    Banger,
}

/// Parses a `--init` value: `auto`, `systemd`, `sysvinit`, `openrc`,
/// `busybox` or `banger`.
pub fn parse_choice(value: &str) -> Result<InitChoice, InitSysError> {
    Ok(match value {
        "auto" => InitChoice::Auto,
        "systemd" => InitChoice::Use(InitSystem::Systemd),
        "sysvinit" => InitChoice::Use(InitSystem::SysVinit),
        "openrc" => InitChoice::Use(InitSystem::OpenRc),
        "busybox" => InitChoice::Use(InitSystem::Busybox),
        "banger" => InitChoice::Banger,
        other => return Err(InitSysError::UnknownChoice(other.to_owned())),
    })
}

/// The path the kernel runs first.
pub const INIT_PATH: &str = "/sbin/init";
/// Where OpenRC's `openrc` binary lives (Alpine: `/sbin`, Debian: merged
/// `/usr/sbin`).
const OPENRC_PATHS: [&str; 2] = ["/sbin/openrc", "/usr/sbin/openrc"];
/// OpenRC's runlevel directories; without them `rc-update` cannot work.
const RUNLEVELS_DIR: &str = "/etc/runlevels";

/// Decides which init system the image boots with; see the module docs for
/// the rules.
pub fn detect(files: &mut dyn ImageFiles) -> Detection {
    let mut evidence = Vec::new();
    let init = match resolve(files, INIT_PATH) {
        Ok(init) => init,
        Err(Unresolved::Missing { path, hops }) => {
            let direct = hops.is_empty();
            evidence.extend(hops);
            evidence.push(if path == INIT_PATH {
                format!("{INIT_PATH} does not exist")
            } else if direct {
                format!("{INIT_PATH} does not exist (there is no {path})")
            } else {
                format!("{INIT_PATH} leads to {path}, which does not exist")
            });
            return Detection {
                system: InitSystem::None,
                evidence,
            };
        }
        Err(Unresolved::NotADirectory(path)) => {
            evidence.push(format!(
                "{INIT_PATH} cannot be reached: {path} is not a directory"
            ));
            return Detection {
                system: InitSystem::None,
                evidence,
            };
        }
        Err(Unresolved::Loop(path)) => {
            evidence.push(format!("{INIT_PATH} is a symlink loop (at {path})"));
            return Detection {
                system: InitSystem::None,
                evidence,
            };
        }
    };
    evidence.extend(init.hops.iter().cloned());
    if !matches!(init.kind, EntryKind::File { .. }) {
        let what = format!(
            "{INIT_PATH} leads to {}, which is not a regular file",
            init.path
        );
        evidence.push(what.clone());
        return Detection {
            system: InitSystem::Unknown(what),
            evidence,
        };
    }
    let name = init.path.rsplit('/').next().unwrap_or_default().to_owned();
    evidence.push(if init.hops.is_empty() {
        format!("{INIT_PATH} is a regular file")
    } else {
        format!("{INIT_PATH} leads to the regular file {}", init.path)
    });
    let system = match name.as_str() {
        "systemd" => InitSystem::Systemd,
        "openrc-init" => InitSystem::OpenRc,
        "runit-init" | "runit" => InitSystem::Runit,
        _ => {
            if let Some(openrc) = OPENRC_PATHS.into_iter().find(|p| is_file(files, p)) {
                if is_dir(files, RUNLEVELS_DIR) {
                    evidence.push(format!("{openrc} exists"));
                    evidence.push(format!("{RUNLEVELS_DIR} is a directory"));
                    return Detection {
                        system: InitSystem::OpenRc,
                        evidence,
                    };
                }
            }
            if name == "busybox" {
                InitSystem::Busybox
            } else if is_file(files, "/etc/inittab") && is_dir(files, "/etc/init.d") {
                evidence.push("/etc/inittab exists".to_owned());
                evidence.push("/etc/init.d is a directory".to_owned());
                InitSystem::SysVinit
            } else {
                let what = format!("{INIT_PATH} is {}", init.path);
                evidence.push("no /etc/inittab with /etc/init.d, no OpenRC".to_owned());
                InitSystem::Unknown(what)
            }
        }
    };
    Detection { system, evidence }
}

#[cfg(test)]
mod tests {
    use super::super::files::MemFiles;
    use super::*;

    fn system(files: &mut MemFiles) -> InitSystem {
        detect(files).system
    }

    #[test]
    fn systemd_through_merged_usr_and_a_relative_link() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin", "usr/sbin")
            .symlink("/lib", "usr/lib")
            .symlink("/usr/sbin/init", "../lib/systemd/systemd")
            .exec("/usr/lib/systemd/systemd", "\x7fELF");
        let d = detect(&mut files);
        assert_eq!(d.system, InitSystem::Systemd);
        assert_eq!(
            d.evidence,
            [
                "/sbin -> usr/sbin",
                "/usr/sbin/init -> ../lib/systemd/systemd",
                "/sbin/init leads to the regular file /usr/lib/systemd/systemd"
            ]
        );
        // Debian's absolute form through /lib -> usr/lib.
        files.symlink("/usr/sbin/init", "/lib/systemd/systemd");
        assert_eq!(system(&mut files), InitSystem::Systemd);
    }

    #[test]
    fn missing_or_dangling_init_is_none() {
        let mut files = MemFiles::new();
        files.file("/bin/sh", "");
        let d = detect(&mut files);
        assert_eq!(d.system, InitSystem::None);
        assert_eq!(
            d.evidence,
            ["/sbin/init does not exist (there is no /sbin)"]
        );
        files.dir("/sbin");
        assert_eq!(detect(&mut files).evidence, ["/sbin/init does not exist"]);

        files.symlink("/sbin/init", "/lib/systemd/systemd");
        let d = detect(&mut files);
        assert_eq!(d.system, InitSystem::None);
        assert_eq!(
            d.evidence,
            [
                "/sbin/init -> /lib/systemd/systemd",
                "/sbin/init leads to /lib, which does not exist"
            ]
        );
        files.symlink("/sbin/init", "init");
        assert_eq!(system(&mut files), InitSystem::None, "a loop");
    }

    #[test]
    fn busybox_symlink_is_busybox_init() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin/init", "../bin/busybox")
            .exec("/bin/busybox", "");
        assert_eq!(system(&mut files), InitSystem::Busybox);
        // An inittab does not make it sysvinit.
        files.file("/etc/inittab", "::sysinit:/etc/init.d/rcS\n");
        files.dir("/etc/init.d");
        assert_eq!(system(&mut files), InitSystem::Busybox);
    }

    #[test]
    fn alpine_busybox_with_openrc_is_openrc() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin/init", "/bin/busybox")
            .exec("/bin/busybox", "")
            .exec("/sbin/openrc", "")
            .dir("/etc/runlevels/default")
            .file("/etc/inittab", "::sysinit:/sbin/openrc sysinit\n");
        let d = detect(&mut files);
        assert_eq!(d.system, InitSystem::OpenRc);
        assert!(d.evidence.contains(&"/sbin/openrc exists".to_owned()));
        // openrc without runlevels is not enough.
        files.remove("/etc/runlevels/default");
        assert_eq!(system(&mut files), InitSystem::Busybox);
    }

    #[test]
    fn debian_sysvinit_and_debian_openrc() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin", "usr/sbin")
            .exec("/usr/sbin/init", "\x7fELF")
            .file("/etc/inittab", "id:2:initdefault:\n")
            .exec("/etc/init.d/rc", "");
        assert_eq!(system(&mut files), InitSystem::SysVinit);
        files
            .exec("/usr/sbin/openrc", "")
            .dir("/etc/runlevels/default");
        let d = detect(&mut files);
        assert_eq!(d.system, InitSystem::OpenRc);
        // Found as /sbin/openrc, through /sbin -> usr/sbin.
        assert!(
            d.evidence.contains(&"/sbin/openrc exists".to_owned()),
            "{d}"
        );
        files.symlink("/usr/sbin/init", "openrc-init");
        files.exec("/usr/sbin/openrc-init", "");
        assert_eq!(system(&mut files), InitSystem::OpenRc);
    }

    #[test]
    fn runit_and_unknown_inits() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin/init", "runit-init")
            .exec("/sbin/runit-init", "");
        assert_eq!(system(&mut files), InitSystem::Runit);

        let mut files = MemFiles::new();
        files.symlink("/sbin/init", "/usr/bin/tini");
        files.exec("/usr/bin/tini", "");
        assert_eq!(
            system(&mut files),
            InitSystem::Unknown("/sbin/init is /usr/bin/tini".into())
        );
        // A regular file without inittab.
        let mut files = MemFiles::new();
        files.exec("/sbin/init", "#!/bin/sh\n");
        assert!(matches!(system(&mut files), InitSystem::Unknown(_)));
        // A directory.
        let mut files = MemFiles::new();
        files.dir("/sbin/init");
        assert!(
            matches!(system(&mut files), InitSystem::Unknown(w) if w.contains("not a regular"))
        );
    }

    #[test]
    fn choices() {
        assert_eq!(parse_choice("auto").unwrap(), InitChoice::Auto);
        assert_eq!(parse_choice("banger").unwrap(), InitChoice::Banger);
        for (s, sys) in [
            ("systemd", InitSystem::Systemd),
            ("sysvinit", InitSystem::SysVinit),
            ("openrc", InitSystem::OpenRc),
            ("busybox", InitSystem::Busybox),
        ] {
            assert_eq!(parse_choice(s).unwrap(), InitChoice::Use(sys.clone()));
            assert_eq!(sys.to_string(), s);
        }
        let err = parse_choice("upstart").unwrap_err();
        assert!(err.to_string().contains("upstart"), "{err}");
    }
}
