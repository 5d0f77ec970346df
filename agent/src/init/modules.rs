//! Step 3: kernel modules without kmod. The names come from
//! `modules-load.d` (systemd's format) and `modules_load=`; each is
//! resolved through depmod's text `modules.dep` and loaded, dependencies
//! first, with `finit_module(2)`.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::cmdline::Cmdline;
use crate::say;

/// The directories systemd-modules-load reads, highest precedence first: a
/// file name in an earlier directory hides the same name in later ones.
pub const CONF_DIRS: [&str; 5] = [
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/local/lib/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
];

/// `MODULE_INIT_COMPRESSED_FILE` (`linux/module.h`, Linux 6.4): the kernel
/// decompresses the file itself.
pub const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// The module names in one `modules-load.d` file: one per line; blank
/// lines and lines starting with `#` or `;` are skipped.
pub fn parse_conf(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';']))
        .map(str::to_owned)
        .collect()
}

/// The `*.conf` files under `root` in systemd's order: sorted by file
/// name, each name taken from the first directory that has it.
pub fn conf_files(root: &Path) -> Vec<PathBuf> {
    let mut by_name: HashMap<String, PathBuf> = HashMap::new();
    for dir in CONF_DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.ends_with(".conf") {
                by_name.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    let mut names: Vec<_> = by_name.into_iter().collect();
    names.sort();
    names.into_iter().map(|(_, path)| path).collect()
}

/// The kernel's spelling of a module name: `-` and `_` are the same.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path in `modules.dep` or `modules.builtin`.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.gz", ".ko.xz", ".ko.zst", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    normalize(stem)
}

fn is_compressed(path: &str) -> bool {
    [".gz", ".xz", ".zst"].iter().any(|ext| path.ends_with(ext))
}

/// `modules.dep` and `modules.builtin` of one kernel.
#[derive(Clone, Debug, Default)]
pub struct ModuleIndex {
    /// Name -> (path, dependency paths as listed).
    deps: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
}

impl ModuleIndex {
    /// Parses depmod's text formats: `path: dep dep ...` per line, and one
    /// path per line.
    pub fn parse(modules_dep: &str, modules_builtin: &str) -> Self {
        let mut deps = HashMap::new();
        for line in modules_dep.lines() {
            let Some((path, list)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let list = list.split_whitespace().map(str::to_owned).collect();
            deps.insert(module_name(path), (path.to_owned(), list));
        }
        let builtin = modules_builtin
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(module_name)
            .collect();
        Self { deps, builtin }
    }

    /// Reads `dir/modules.dep` (required) and `dir/modules.builtin`.
    pub fn read(dir: &Path) -> io::Result<Self> {
        let dep = fs::read_to_string(dir.join("modules.dep"))?;
        let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(Self::parse(&dep, &builtin))
    }
}

/// One step of a load plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Load the file `path` (relative to the modules directory unless
    /// absolute) once every module of `needs` is in.
    Load {
        /// The module's name.
        name: String,
        /// Its path as `modules.dep` gives it.
        path: String,
        /// Its direct dependencies by name.
        needs: Vec<String>,
    },
    /// Compiled into the kernel.
    Builtin(String),
    /// Already loaded.
    Loaded(String),
    /// In neither `modules.dep` nor `modules.builtin`.
    NotFound(String),
}

/// The steps that load `requested` in the order modprobe uses: for each
/// module, its dependencies from the last listed to the first (each with
/// its own dependencies first), then the module. Every module appears
/// once. `is_loaded` says whether a module is in already.
pub fn plan(
    requested: &[String],
    index: &ModuleIndex,
    is_loaded: impl Fn(&str) -> bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut seen = HashSet::new();
    for name in requested {
        let name = normalize(name);
        if !seen.insert(name.clone()) {
            continue;
        }
        if index.builtin.contains(&name) {
            steps.push(Step::Builtin(name));
        } else if index.deps.contains_key(&name) {
            visit(&name, None, index, &is_loaded, &mut seen, &mut steps);
        } else {
            steps.push(Step::NotFound(name));
        }
    }
    steps
}

fn visit(
    name: &str,
    listed_path: Option<&str>,
    index: &ModuleIndex,
    is_loaded: &dyn Fn(&str) -> bool,
    seen: &mut HashSet<String>,
    steps: &mut Vec<Step>,
) {
    if is_loaded(name) {
        steps.push(Step::Loaded(name.to_owned()));
        return;
    }
    let (path, deps) = match index.deps.get(name) {
        Some((path, deps)) => (path.clone(), deps.as_slice()),
        // A dependency without a line of its own: load it as listed.
        None => (listed_path.unwrap_or(name).to_owned(), &[][..]),
    };
    for dep in deps.iter().rev() {
        let dep_name = module_name(dep);
        if seen.insert(dep_name.clone()) {
            visit(&dep_name, Some(dep), index, is_loaded, seen, steps);
        }
    }
    steps.push(Step::Load {
        name: name.to_owned(),
        path,
        needs: deps.iter().map(|dep| module_name(dep)).collect(),
    });
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> io::Result<String> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: passes a valid utsname.
    if unsafe { libc::uname(&mut uts) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates the field.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// `finit_module(fd, "", flags)`, decompressing in the kernel when the file
/// is compressed.
pub fn load_file(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    let flags = if is_compressed(&path.to_string_lossy()) {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    // SAFETY: passes an open descriptor and a NUL-terminated empty string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Loads the modules that `root`'s `modules-load.d` and `cmdline` ask for.
/// Returns whether every one is in (built in, loaded before or now).
pub fn run(root: &Path, cmdline: &Cmdline) -> bool {
    let mut requested = Vec::new();
    for file in conf_files(root) {
        match fs::read_to_string(&file) {
            Ok(text) => requested.extend(parse_conf(&text)),
            Err(e) => say!("modules: cannot read {}: {e}", file.display()),
        }
    }
    requested.extend(cmdline.modules_load());
    if requested.is_empty() {
        say!("modules: nothing to load");
        return true;
    }
    let release = match kernel_release() {
        Ok(release) => release,
        Err(e) => {
            say!("modules: cannot find the kernel release: {e}");
            return false;
        }
    };
    let dir = root.join("lib/modules").join(&release);
    let index = match ModuleIndex::read(&dir) {
        Ok(index) => index,
        Err(e) => {
            say!("modules: cannot read {}/modules.dep: {e}", dir.display());
            ModuleIndex::default()
        }
    };
    let sys_module = root.join("sys/module");
    let steps = plan(&requested, &index, |name| sys_module.join(name).exists());
    execute(&steps, &dir)
}

fn execute(steps: &[Step], dir: &Path) -> bool {
    let mut ok = true;
    let mut failed: HashSet<&str> = HashSet::new();
    for step in steps {
        match step {
            Step::Builtin(name) => say!("modules: {name} is built into the kernel"),
            Step::Loaded(name) => say!("modules: {name} is already loaded"),
            Step::NotFound(name) => {
                say!("modules: {name} is in neither modules.dep nor modules.builtin; skipped");
                ok = false;
            }
            Step::Load { name, path, needs } => {
                if let Some(dep) = needs.iter().find(|dep| failed.contains(dep.as_str())) {
                    say!("modules: {name} skipped: its dependency {dep} failed");
                    failed.insert(name);
                    ok = false;
                    continue;
                }
                match load_file(&dir.join(path)) {
                    Ok(()) => say!("modules: loaded {name}"),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        say!("modules: {name} is already loaded")
                    }
                    Err(e) => {
                        let hint = if is_compressed(path) {
                            " (compressed: the kernel may not decompress modules itself)"
                        } else {
                            ""
                        };
                        say!("modules: cannot load {name} from {path}: {e}{hint}; skipped");
                        failed.insert(name);
                        ok = false;
                    }
                }
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/vmw_vsock/vsock.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/drivers/virtio/virtio_ring.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko.zst: kernel/net/core/failover.ko.xz kernel/drivers/net/net_failover.ko.gz
kernel/drivers/net/net_failover.ko.gz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko
";
    const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/drivers/nvme/host/nvme-core.ko\n";

    fn load(name: &str, path: &str, needs: &[&str]) -> Step {
        Step::Load {
            name: name.into(),
            path: path.into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn conf_format() {
        let text =
            "# comment\n; also a comment\n\n  vsock  \nvmw_vsock_virtio_transport\n\tvirtio-net\n";
        assert_eq!(
            parse_conf(text),
            ["vsock", "vmw_vsock_virtio_transport", "virtio-net"]
        );
    }

    #[test]
    fn conf_files_override_by_name_and_sort() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("usr/lib/modules-load.d/b.conf", "lib-b\n");
        write("etc/modules-load.d/b.conf", "etc-b\n");
        write("usr/lib/modules-load.d/a.conf", "lib-a\n");
        write("run/modules-load.d/c.conf", "run-c\n");
        write("etc/modules-load.d/readme.txt", "not a conf\n");
        let files = conf_files(dir.path());
        let rel: Vec<_> = files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            rel,
            [
                "usr/lib/modules-load.d/a.conf",
                "etc/modules-load.d/b.conf",
                "run/modules-load.d/c.conf"
            ]
        );
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name("kernel/drivers/net/virtio_net.ko"),
            "virtio_net"
        );
        assert_eq!(module_name("kernel/a/nvme-core.ko.zst"), "nvme_core");
        assert_eq!(module_name("extra/x.ko.gz"), "x");
        assert_eq!(module_name("/abs/y.ko.xz"), "y");
    }

    #[test]
    fn dependencies_load_last_listed_first() {
        let index = ModuleIndex::parse(DEP, BUILTIN);
        let steps = plan(&names(&["vmw_vsock_virtio_transport"]), &index, |_| false);
        assert_eq!(
            steps,
            [
                load("virtio", "kernel/drivers/virtio/virtio.ko", &[]),
                load("vsock", "kernel/net/vmw_vsock/vsock.ko", &[]),
                load("virtio_ring", "kernel/drivers/virtio/virtio_ring.ko", &[]),
                load(
                    "vmw_vsock_virtio_transport_common",
                    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
                    &["vsock"]
                ),
                load(
                    "vmw_vsock_virtio_transport",
                    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
                    &[
                        "vmw_vsock_virtio_transport_common",
                        "virtio_ring",
                        "vsock",
                        "virtio"
                    ]
                ),
            ]
        );
    }

    #[test]
    fn every_module_once_builtins_and_unknowns() {
        let index = ModuleIndex::parse(DEP, BUILTIN);
        let requested = names(&[
            "vsock",
            "ext4",
            "nvme_core",
            "vmw-vsock-virtio-transport-common",
            "vsock",
            "nosuch",
            "virtio-net",
        ]);
        let steps = plan(&requested, &index, |_| false);
        assert_eq!(
            steps,
            [
                load("vsock", "kernel/net/vmw_vsock/vsock.ko", &[]),
                Step::Builtin("ext4".into()),
                Step::Builtin("nvme_core".into()),
                load(
                    "vmw_vsock_virtio_transport_common",
                    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
                    &["vsock"]
                ),
                Step::NotFound("nosuch".into()),
                load("failover", "kernel/net/core/failover.ko.xz", &[]),
                load(
                    "net_failover",
                    "kernel/drivers/net/net_failover.ko.gz",
                    &["failover"]
                ),
                load(
                    "virtio_net",
                    "kernel/drivers/net/virtio_net.ko.zst",
                    &["failover", "net_failover"]
                ),
            ]
        );
    }

    #[test]
    fn loaded_modules_are_not_reloaded_and_missing_lines_use_the_listed_path() {
        let index = ModuleIndex::parse(DEP, BUILTIN);
        let steps = plan(
            &names(&["vmw_vsock_virtio_transport_common", "virtiofs"]),
            &index,
            |name| name == "vsock",
        );
        assert_eq!(
            steps,
            [
                Step::Loaded("vsock".into()),
                load(
                    "vmw_vsock_virtio_transport_common",
                    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
                    &["vsock"]
                ),
                load("fuse", "kernel/fs/fuse/fuse.ko", &[]),
                load("virtiofs", "kernel/fs/fuse/virtiofs.ko", &["fuse"]),
            ]
        );
        let steps = plan(&names(&["vsock"]), &index, |_| true);
        assert_eq!(steps, [Step::Loaded("vsock".into())]);
    }

    #[test]
    fn a_failed_dependency_skips_its_dependents() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing exists under dir: every load fails with ENOENT, so the
        // dependent is skipped rather than tried.
        let steps = vec![
            load("a", "a.ko", &[]),
            load("b", "b.ko", &["a"]),
            Step::Builtin("c".into()),
        ];
        assert!(!execute(&steps, dir.path()));
        assert!(execute(
            &[Step::Builtin("c".into()), Step::Loaded("d".into())],
            dir.path()
        ));
    }

    #[test]
    fn compressed_files_are_recognised() {
        assert!(is_compressed("a.ko.zst"));
        assert!(is_compressed("a.ko.gz"));
        assert!(is_compressed("a.ko.xz"));
        assert!(!is_compressed("a.ko"));
    }
}
