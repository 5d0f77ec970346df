//! How image and kernel records read: `image show`, `image list --json` and
//! `kernel list`, for people (local times, IEC sizes, no internal fields)
//! and for scripts (`--json`, whose fields README.md documents).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use banger::guest::GuestRecord;
use banger::inspect::format::{iec, rfc3339, rfc3339_utc};
use banger::source::RuntimeConfig;
use banger::store::kernel::{bzimage_release, INITRD_FILE, MODULES_FILE, VMLINUX_FILE};
use banger::store::pull::ROOTFS_FILE;
use banger::store::{ImageRecord, KernelRecord, Kind, Store};

/// The files of an image's directory that exist.
fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    path.exists().then_some(path)
}

/// The release of the kernel installed in `dir` (an image's or a
/// kernel's), from its bzImage's setup header; `None` when unreadable.
fn installed_release(dir: &Path) -> Option<String> {
    bzimage_release(&dir.join(VMLINUX_FILE)).ok().flatten()
}

/// The kernel release of an image: the modules banger wrote say it, else
/// the bzImage installed beside the rootfs does.
fn kernel_release(dir: &Path, guest: Option<&GuestRecord>) -> Option<String> {
    guest
        .and_then(|g| g.kernel_release.clone())
        .or_else(|| installed_release(dir))
}

/// An image record as JSON. Stable: fields are only ever added.
pub fn image_json(store: &Store, r: &ImageRecord) -> Value {
    let dir = store.layout().entry_dir(Kind::Image, &r.name);
    let file = |name: &str| existing(&dir, name).map(|p| p.display().to_string());
    json!({
        "name": r.name,
        "source": r.source,
        "manifest_digest": r.manifest_digest,
        "platform": r.platform,
        "kernel": r.kernel,
        "kernel_release": kernel_release(&dir, r.guest.as_ref()),
        "size": r.size,
        "created": r.created,
        "created_at": rfc3339_utc(r.created),
        "managed": r.managed,
        "pull_id": r.pull_id,
        "config": r.config,
        "guest": r.guest,
        "path": dir.display().to_string(),
        "rootfs": file(ROOTFS_FILE),
        "vmlinux": file(VMLINUX_FILE),
        "initrd": file(INITRD_FILE),
        "modules": file(MODULES_FILE),
        "blobs": r.blobs,
    })
}

/// An argv as a shell would take it back: words quoted only when needed.
fn shell_words(argv: &[String]) -> String {
    let quote = |word: &String| {
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
        if plain {
            word.clone()
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// `image show`'s text: one `label  value` line per fact, lists one item
/// per line, and what is absent said in words.
pub fn image_text(store: &Store, r: &ImageRecord) -> String {
    let dir = store.layout().entry_dir(Kind::Image, &r.name);
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<12}{value}");
    };
    line("name", &r.name);
    line("source", &r.source);
    if r.managed {
        line("", "(a catalog image: `banger image pull` can update it)");
    }
    line(
        "digest",
        r.manifest_digest
            .as_deref()
            .unwrap_or("none (not from a registry or layout)"),
    );
    line("platform", r.platform.as_deref().unwrap_or("unknown"));
    line("pulled", &rfc3339(r.created));
    line("size", &format!("{} ({} bytes)", iec(r.size), r.size));
    let kernel = match (&r.kernel, kernel_release(&dir, r.guest.as_ref())) {
        (Some(name), Some(release)) => format!("{name} ({release})"),
        (Some(name), None) => name.clone(),
        (None, Some(release)) => format!("none installed (modules for {release})"),
        (None, None) => "none (`--kernel-ref` or a catalog image installs one)".to_string(),
    };
    line("kernel", &kernel);
    line("path", &dir.display().to_string());
    let files: Vec<&str> = [ROOTFS_FILE, VMLINUX_FILE, INITRD_FILE, MODULES_FILE]
        .into_iter()
        .filter(|name| existing(&dir, name).is_some())
        .collect();
    line("files", &files.join(", "));
    write_config(&mut line, r.config.as_ref());
    write_guest(&mut line, r.guest.as_ref());
    out
}

fn write_config(line: &mut impl FnMut(&str, &str), config: Option<&RuntimeConfig>) {
    let Some(config) = config else {
        line("config", "not recorded (pulled by an older banger)");
        return;
    };
    let argv = |argv: &[String]| {
        if argv.is_empty() {
            "none".to_string()
        } else {
            shell_words(argv)
        }
    };
    line("entrypoint", &argv(&config.entrypoint));
    line("cmd", &argv(&config.cmd));
    if config.env.is_empty() {
        line("env", "none");
    }
    for (i, var) in config.env.iter().enumerate() {
        line(if i == 0 { "env" } else { "" }, var);
    }
    line(
        "workdir",
        config.working_dir.as_deref().unwrap_or("/ (default)"),
    );
    line("user", config.user.as_deref().unwrap_or("root (default)"));
    let ports = if config.exposed_ports.is_empty() {
        "none".to_string()
    } else {
        config.exposed_ports.join(", ")
    };
    line("ports", &ports);
}

fn write_guest(line: &mut impl FnMut(&str, &str), guest: Option<&GuestRecord>) {
    let Some(guest) = guest else {
        line(
            "guest",
            "left as the layers made it (--no-agents: no init, agents or modules)",
        );
        return;
    };
    line("init", &format!("{} ({})", guest.init, guest.init_reason));
    line(
        "agents",
        &format!(
            "banger-vsock-agent on vsock port {}, network set-up from ip=, first boot (OpenSSH)",
            guest.vsock_port
        ),
    );
    let modules = match (&guest.kernel_release, guest.modules.is_empty()) {
        (_, true) => "none written".to_string(),
        (Some(release), false) => format!(
            "{} for {release}: {}",
            guest.modules.len(),
            guest.modules.join(", ")
        ),
        (None, false) => guest.modules.join(", "),
    };
    line("modules", &modules);
}

/// `image list`'s table, or `None` when there are no images.
pub fn image_table(images: &[ImageRecord]) -> Option<String> {
    if images.is_empty() {
        return None;
    }
    let mut out = format!(
        "{:<24} {:<10} {:<16} {:<25} SOURCE\n",
        "NAME", "SIZE", "KERNEL", "PULLED"
    );
    for r in images {
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<16} {:<25} {}",
            r.name,
            iec(r.size),
            r.kernel.as_deref().unwrap_or("none"),
            rfc3339(r.created),
            r.source
        );
    }
    Some(out)
}

/// A kernel record as JSON. Stable: fields are only ever added.
pub fn kernel_json(store: &Store, k: &KernelRecord) -> Value {
    let dir = store.layout().entry_dir(Kind::Kernel, &k.name);
    json!({
        "name": k.name,
        "source": k.source,
        "manifest_digest": k.manifest_digest,
        "release": installed_release(&dir),
        "initrd": k.initrd,
        "modules": k.modules,
        "created": k.created,
        "created_at": rfc3339_utc(k.created),
        "path": dir.display().to_string(),
    })
}

/// `kernel list`'s table, or `None` when there are no kernels.
pub fn kernel_table(store: &Store, kernels: &[KernelRecord]) -> Option<String> {
    if kernels.is_empty() {
        return None;
    }
    let mut out = format!(
        "{:<20} {:<24} {:<7} {:<8} SOURCE\n",
        "NAME", "RELEASE", "INITRD", "MODULES"
    );
    for k in kernels {
        let dir = store.layout().entry_dir(Kind::Kernel, &k.name);
        let release = installed_release(&dir);
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<7} {:<8} {}",
            k.name,
            release.as_deref().unwrap_or("unknown"),
            yes_no(k.initrd),
            yes_no(k.modules),
            k.source.as_deref().unwrap_or("(imported from files)")
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn argv_quotes_only_what_needs_it() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_words(&argv(&["/bin/sh", "-c"])), "/bin/sh -c");
        assert_eq!(
            shell_words(&argv(&["sh", "-c", "echo it's"])),
            r"sh -c 'echo it'\''s'"
        );
        assert_eq!(shell_words(&argv(&[""])), "''");
    }
}
