//! A kernel's modules, written into the guest at image-write time.
//!
//! Debian's cloud kernel (like most distribution kernels) builds virtio-pci,
//! virtio-net, virtio-blk and vsock as modules, so a guest without them has
//! no NIC and no `/dev/vsock`. banger puts the modules the guest needs (or
//! all of them) under `/lib/modules/RELEASE/` — through the image's own
//! `/lib -> usr/lib` link where it has one — root-owned, and writes the
//! indexes `depmod` would, so the guest's `modprobe` (or banger's init)
//! finds them.
//!
//! The modules are read twice: once to learn every module's name, release
//! and symbols (one `.ko` in memory at a time), once to stream the chosen
//! ones into the image. Nothing else of the tree is held.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use banger_ext4::builder::{BuildError, ImageBuilder};
use banger_ext4::tree::{ContentStore, Copying, FileContent, Metadata, NodeKind, Timestamp, Tree};

use crate::flatten::tar_reader::{EntryKind, TarReader};
use crate::flatten::TarError;
use crate::modules::{self, DepmodInput, ModuleError, ModuleInfo};

use super::place::{place, PlaceError};

/// Largest `modules.order`, `modules.builtin` or `modules.builtin.modinfo`.
const MAX_LIST_BYTES: u64 = 16 << 20;
/// The lists depmod reads beside the modules; copied into the guest as they are.
const LISTS: [&str; 3] = [
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Where a kernel's modules come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleSource {
    /// A gzip'd tar of `lib/modules/RELEASE/`'s contents (a kernel in the
    /// store: `kernels/NAME/modules.tar.gz`).
    Tarball(PathBuf),
    /// A directory laid out as `lib/modules/RELEASE/`.
    Directory(PathBuf),
}

impl ModuleSource {
    fn describe(&self) -> String {
        match self {
            Self::Tarball(p) | Self::Directory(p) => p.display().to_string(),
        }
    }
}

/// Which modules to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModuleSet {
    /// [`modules::GUEST_MODULES`] and what they depend on.
    Guest,
    /// Every module of the kernel.
    All,
}

/// Modules to write into an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModulesPlan {
    /// Where they come from.
    pub source: ModuleSource,
    /// Which ones.
    pub set: ModuleSet,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModulesReport {
    /// The kernel release (`uname -r`), from the modules' vermagic.
    pub release: String,
    /// Names of the modules written, sorted.
    pub modules: Vec<String>,
    /// Wanted modules the kernel neither has nor builds in.
    pub missing: Vec<String>,
}

/// Why the modules could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// The module tree could not be read.
    #[error("reading kernel modules from {source_path}")]
    Read {
        /// The tarball or directory.
        source_path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The modules tarball is not a valid tar.
    #[error("reading kernel modules from {source_path}")]
    Tar {
        /// The tarball.
        source_path: String,
        /// The cause.
        #[source]
        source: TarError,
    },
    /// One module is not a kernel module banger can read (the cause names it).
    #[error("cannot read the kernel's modules")]
    Module(#[source] ModuleError),
    /// A file is larger than banger reads into memory.
    #[error("{path} is {size} bytes, more than the {max} banger reads from a module tree")]
    TooLarge {
        /// Its path under `lib/modules/RELEASE`.
        path: String,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The tree has no modules at all.
    #[error("{0} holds no kernel modules (*.ko)")]
    Empty(String),
    /// The modules were built for different kernels.
    #[error("kernel modules of two releases in one tree: {first} and {second} ({path})")]
    MixedReleases {
        /// The release seen first.
        first: String,
        /// Another one.
        second: String,
        /// A module of the second.
        path: String,
    },
    /// A module has no vermagic to tell its release.
    #[error("kernel module {0} has no vermagic: cannot tell which kernel it is for")]
    NoRelease(String),
    /// The modules' dependencies or indexes could not be computed.
    #[error("computing the module indexes")]
    Depmod(#[source] ModuleError),
    /// The module changed between the two reads.
    #[error("{0} changed while banger was reading it")]
    Changed(String),
    /// A file could not be placed in the tree.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// The image builder failed to store a module.
    #[error("writing kernel module {path}")]
    Store {
        /// Its path under `lib/modules/RELEASE`.
        path: String,
        /// The cause.
        #[source]
        source: BuildError,
    },
}

/// Writes the modules `plan` asks for into `tree` under
/// `/lib/modules/RELEASE/`, their data straight into the image through
/// `builder`, with the indexes `depmod` writes.
pub fn write_modules(
    tree: &mut Tree,
    builder: &mut ImageBuilder,
    plan: &ModulesPlan,
    time: Timestamp,
) -> Result<ModulesReport, ModulesError> {
    let scan = scan(&plan.source)?;
    let builtin = modules::builtin::builtin_set(scan.text("modules.builtin").unwrap_or(""));
    let (mut chosen, missing) = match plan.set {
        ModuleSet::All => ((0..scan.modules.len()).collect(), Vec::new()),
        ModuleSet::Guest => {
            let present: HashSet<&str> = scan.modules.iter().map(|m| m.name.as_str()).collect();
            let (wanted, missing): (Vec<&str>, Vec<&str>) = modules::GUEST_MODULES
                .iter()
                .partition(|m| present.contains(*m) || builtin.contains(**m));
            let chosen =
                modules::closure(&scan.modules, &wanted, &builtin).map_err(ModulesError::Depmod)?;
            (chosen, missing.into_iter().map(str::to_owned).collect())
        }
    };
    chosen.sort_unstable();
    chosen.dedup();
    let selected: Vec<ModuleInfo> = chosen.iter().map(|&i| scan.modules[i].clone()).collect();
    let root = format!("/lib/modules/{}", scan.release);
    let dir_meta = Metadata::new(0o755, time);
    let file_meta = Metadata::new(0o644, time);

    let wanted_paths: HashSet<&str> = selected.iter().map(|m| m.path.as_str()).collect();
    let mut stored = 0;
    for_each_file(&plan.source, &mut |path, size, reader| {
        if !wanted_paths.contains(path) {
            return Ok(());
        }
        let ranges: &[std::ops::Range<u64>] = if size == 0 { &[] } else { &[0..size] };
        let content = builder
            .store(&mut Copying(reader), size, ranges)
            .map_err(|source| ModulesError::Store {
                path: path.to_owned(),
                source,
            })?;
        let full = format!("{root}/{path}");
        place(
            tree,
            &full,
            NodeKind::File(content),
            file_meta.clone(),
            &dir_meta,
        )?;
        stored += 1;
        Ok(())
    })?;
    if stored != selected.len() {
        return Err(ModulesError::Changed(plan.source.describe()));
    }

    let indexes = modules::generate(&DepmodInput {
        modules: &selected,
        modules_order: scan.text("modules.order"),
        modules_builtin: scan.text("modules.builtin"),
        modules_builtin_modinfo: scan.list("modules.builtin.modinfo"),
    })
    .map_err(ModulesError::Depmod)?;
    let lists = LISTS
        .iter()
        .filter_map(|name| Some((*name, scan.list(name)?.to_vec())));
    for (name, bytes) in lists.chain(indexes) {
        let content = FileContent::from_bytes(bytes);
        place(
            tree,
            &format!("{root}/{name}"),
            NodeKind::File(content),
            file_meta.clone(),
            &dir_meta,
        )?;
    }
    let mut names: Vec<String> = selected.into_iter().map(|m| m.name).collect();
    names.sort();
    Ok(ModulesReport {
        release: scan.release,
        modules: names,
        missing,
    })
}

/// What the first read learned.
struct Scan {
    release: String,
    modules: Vec<ModuleInfo>,
    lists: Vec<(&'static str, Vec<u8>)>,
}

impl Scan {
    fn list(&self, name: &str) -> Option<&[u8]> {
        self.lists
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// A text list; one that is not UTF-8 counts as absent, as it would
    /// name no module depmod could find either.
    fn text(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.list(name)?).ok()
    }
}

/// Reads every module's metadata and the lists beside them.
fn scan(source: &ModuleSource) -> Result<Scan, ModulesError> {
    let mut modules = Vec::new();
    let mut lists = Vec::new();
    let mut release: Option<String> = None;
    let described = source.describe();
    for_each_file(source, &mut |path, size, reader| {
        let list = LISTS.iter().find(|l| **l == path);
        if !is_module(path) && list.is_none() {
            return Ok(());
        }
        let max = if list.is_some() {
            MAX_LIST_BYTES
        } else {
            modules::info::MAX_MODULE_SIZE
        };
        if size > max {
            return Err(ModulesError::TooLarge {
                path: path.to_owned(),
                size,
                max,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|source| ModulesError::Read {
                source_path: described.clone(),
                source,
            })?;
        if let Some(list) = list {
            lists.push((*list, bytes));
            return Ok(());
        }
        let info = ModuleInfo::parse(path, &bytes).map_err(ModulesError::Module)?;
        let this = info
            .release()
            .ok_or_else(|| ModulesError::NoRelease(path.to_owned()))?
            .to_owned();
        match &release {
            None => release = Some(this),
            Some(first) if *first != this => {
                return Err(ModulesError::MixedReleases {
                    first: first.clone(),
                    second: this,
                    path: path.to_owned(),
                })
            }
            Some(_) => {}
        }
        modules.push(info);
        Ok(())
    })?;
    let release = release.ok_or_else(|| ModulesError::Empty(source.describe()))?;
    Ok(Scan {
        release,
        modules,
        lists,
    })
}

/// Whether `path` names a kernel module, compressed or not.
fn is_module(path: &str) -> bool {
    [".ko", ".ko.gz", ".ko.zst", ".ko.xz"]
        .iter()
        .any(|suffix| path.ends_with(suffix))
}

/// What [`for_each_file`] calls with each file: its path relative to
/// `lib/modules/RELEASE`, its size and its bytes.
type Visitor<'a> = dyn FnMut(&str, u64, &mut dyn Read) -> Result<(), ModulesError> + 'a;

/// Calls `visit` with each regular file of the module tree: its path
/// relative to `lib/modules/RELEASE` (no `./`), its size and its bytes.
/// Directories are visited in name order so the result is deterministic.
fn for_each_file(source: &ModuleSource, visit: &mut Visitor<'_>) -> Result<(), ModulesError> {
    match source {
        ModuleSource::Tarball(path) => {
            let io_error = |e: io::Error| ModulesError::Read {
                source_path: path.display().to_string(),
                source: e,
            };
            let file = File::open(path).map_err(io_error)?;
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(file));
            let mut tar = TarReader::new(gz);
            while let Some(entry) = tar.next_entry().map_err(|e| ModulesError::Tar {
                source_path: path.display().to_string(),
                source: e,
            })? {
                if entry.kind != EntryKind::Regular {
                    continue;
                }
                let name = String::from_utf8_lossy(&entry.path).into_owned();
                let relative = name.trim_start_matches("./").trim_start_matches('/');
                let mut data = tar.data();
                visit(relative, entry.size, &mut data)?;
            }
            Ok(())
        }
        ModuleSource::Directory(root) => walk(root, root, visit),
    }
}

fn walk(root: &Path, dir: &Path, visit: &mut Visitor<'_>) -> Result<(), ModulesError> {
    let io_error = |e: io::Error| ModulesError::Read {
        source_path: dir.display().to_string(),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error)?
        .collect::<Result<_, _>>()
        .map_err(io_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // `build` and `source` are symlinks into a kernel tree: not followed.
        let kind = entry.file_type().map_err(io_error)?;
        if kind.is_dir() {
            walk(root, &path, visit)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .expect("walk stays under its root")
                .to_string_lossy()
                .into_owned();
            let mut file = File::open(&path).map_err(io_error)?;
            let size = file.metadata().map_err(io_error)?.len();
            visit(&relative, size, &mut (&mut file).take(size))?;
        }
    }
    Ok(())
}
