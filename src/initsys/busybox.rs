//! busybox init: no service manager, only `/etc/inittab`.
//!
//! banger's block of lines, after every line the image already has:
//!
//! | action | wrapper in [`BUSYBOX_DIR`] | why |
//! |---|---|---|
//! | `sysinit` | `banger-network` | runs once, waited for, after the image's own `rcS`; mounts `/proc` and `/sys` if nothing did and loads the modules (busybox init loads none) |
//! | `once` | `banger-first-boot` | in the background: the console and the agent do not wait minutes for a package manager |
//! | `respawn` | `banger-vsock-agent` | restarted when it exits, except after 69 (no vsock), when the wrapper sleeps instead: a respawn line cannot be switched off |
//! | `respawn` | `banger-sshd` | busybox has nothing to start sshd on later boots: this waits until first boot has installed it and removed its marker, then runs `sshd -D` |
//!
//! No `shutdown` line: at halt busybox init sends every process SIGTERM,
//! then SIGKILL, and nothing of banger's needs more.
//!
//! An image without `/etc/inittab` runs busybox's built-in table
//! (`parse_inittab` in `init/init.c`); once an inittab exists busybox
//! reads only that, so banger writes the built-in lines first
//! ([`BUSYBOX_DEFAULT_INITTAB`]) to keep the console shells, Ctrl-Alt-Del
//! and the unmount at shutdown. Rewriting is idempotent: earlier banger
//! lines are dropped before the block is appended again.

use super::files::{read_file, ImageFiles};
use super::{fill, ServiceFile, MODE_DATA, MODE_EXEC};

/// The file busybox init reads.
pub const INITTAB_PATH: &str = "/etc/inittab";
/// Where the wrappers go.
pub const BUSYBOX_DIR: &str = "/usr/local/lib/banger/busybox";

/// busybox 1.35's table when there is no `/etc/inittab`
/// (`parse_inittab`: `INIT_SCRIPT`, askfirst `-/bin/sh` on the console and
/// `VC_2`..`VC_4` = `/dev/tty2`..`4`, `reboot` on Ctrl-Alt-Del, `umount -a
/// -r` and `swapoff -a` at shutdown, `init` on restart), in its order.
pub const BUSYBOX_DEFAULT_INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
tty2::askfirst:-/bin/sh
tty3::askfirst:-/bin/sh
tty4::askfirst:-/bin/sh
::ctrlaltdel:reboot
::shutdown:umount -a -r
::shutdown:swapoff -a
::restart:init
";

/// First line of banger's block.
const BEGIN: &str =
    "# banger: begin (written by banger; replaced whenever banger writes the image)";
/// Last line of banger's block.
const END: &str = "# banger: end";

const NETWORK: &str = include_str!("../../assets/busybox/banger-network");
const AGENT: &str = include_str!("../../assets/busybox/banger-vsock-agent");
const FIRST_BOOT: &str = include_str!("../../assets/busybox/banger-first-boot");
const SSHD: &str = include_str!("../../assets/busybox/banger-sshd");

/// The wrappers by name, and the inittab action that runs each.
pub(super) const WRAPPERS: [(&str, &str, &str); 4] = [
    ("banger-network", "sysinit", NETWORK),
    ("banger-first-boot", "once", FIRST_BOOT),
    ("banger-vsock-agent", "respawn", AGENT),
    ("banger-sshd", "respawn", SSHD),
];

/// Wrappers and the new `/etc/inittab` for a busybox image.
pub(super) fn service_files(files: &mut dyn ImageFiles, vsock_port: u32) -> Vec<ServiceFile> {
    let mut out: Vec<ServiceFile> = WRAPPERS
        .iter()
        .map(|(name, _, template)| {
            ServiceFile::file(
                format!("{BUSYBOX_DIR}/{name}"),
                MODE_EXEC,
                fill(template, vsock_port, true),
            )
        })
        .collect();
    let existing = read_file(files, INITTAB_PATH, 1 << 20);
    out.push(ServiceFile::file(
        INITTAB_PATH,
        MODE_DATA,
        inittab(existing.as_deref()),
    ));
    out
}

/// The inittab to write: `existing` (or busybox's built-in table when
/// there is none) without earlier banger lines, then banger's block.
pub fn inittab(existing: Option<&[u8]>) -> Vec<u8> {
    let mut text = match existing {
        Some(bytes) => strip_banger(&String::from_utf8_lossy(bytes)),
        None => BUSYBOX_DEFAULT_INITTAB.to_owned(),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(BEGIN);
    text.push('\n');
    for (name, action, _) in WRAPPERS {
        text.push_str(&format!("::{action}:{BUSYBOX_DIR}/{name}\n"));
    }
    text.push_str(END);
    text.push('\n');
    text.into_bytes()
}

/// `text` without banger's block and without any other line that runs one
/// of its wrappers (a block whose markers were edited away).
fn strip_banger(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == BEGIN {
            inside = true;
        } else if bare == END && inside {
            inside = false;
        } else if !inside && !bare.contains(&format!("{BUSYBOX_DIR}/")) {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_is_idempotent_and_keeps_other_lines() {
        let alpine = "::sysinit:/sbin/openrc sysinit\ntty1::respawn:/sbin/getty 38400 tty1";
        let once = inittab(Some(alpine.as_bytes()));
        let twice = inittab(Some(&once));
        assert_eq!(once, twice);
        let text = String::from_utf8(once).unwrap();
        assert!(text.starts_with(
            "::sysinit:/sbin/openrc sysinit\ntty1::respawn:/sbin/getty 38400 tty1\n# banger: begin"
        ));
        assert_eq!(
            text.matches("::respawn:/usr/local/lib/banger/busybox/")
                .count(),
            2
        );
        // A stray line of ours outside the block goes too.
        let stray = format!("{text}::once:{BUSYBOX_DIR}/banger-first-boot\n");
        assert_eq!(inittab(Some(stray.as_bytes())), text.into_bytes());
    }

    #[test]
    fn without_an_inittab_the_builtin_table_comes_first() {
        let text = String::from_utf8(inittab(None)).unwrap();
        assert!(text.starts_with(BUSYBOX_DEFAULT_INITTAB));
        assert!(text.ends_with("# banger: end\n"));
    }
}
