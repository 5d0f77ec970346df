//! `banger::modules` against the host's kmod on a real kernel: Debian's
//! cloud kernel (fetched by `scripts/guest-kernel`).
//!
//! For two module sets, (a) the closure of `GUEST_MODULES` and (b) the whole
//! tree, laid out as `BASE/lib/modules/RELEASE/` with the package's
//! `modules.order`, `modules.builtin` and `modules.builtin.modinfo`:
//!
//! - the host's `depmod -b BASE RELEASE` and our generator run on the same
//!   files, and every file depmod writes must be byte-equal to ours, the
//!   `.bin` indexes included;
//! - independently of the bytes, a second tree with *our* files must answer
//!   the same lookups through the host's `modprobe` as depmod's tree: the
//!   dependencies of every module and every built-in module
//!   (`--show-depends`), and the module of concrete device aliases made
//!   from every alias pattern, of `symbol:NAME` for every exported symbol,
//!   and of built-in aliases (`-R`).
//!
//! The closure itself is checked against `modinfo -F depends` followed
//! recursively (host kmod as oracle). Needs kmod (`depmod`, `modprobe`,
//! `modinfo`) and apt for the kernel; skips loudly without them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use banger::modules::builtin::{builtin_aliases, builtin_names, builtin_set};
use banger::modules::depmod::OUTPUT_FILES;
use banger::modules::{closure, generate, DepmodInput, ModuleInfo, GUEST_MODULES};
use banger_testkit::skip::system_tool;
use banger_testkit::Skip;

/// The metadata files of a kernel package that depmod reads.
const INPUT_FILES: [&str; 3] = [
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// The cached Debian cloud kernel: `(directory, release)`, or why not.
fn guest_kernel() -> Result<(PathBuf, String), Skip> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/guest-kernel");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| Skip(format!("cannot run {script}: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(2) => return Err(Skip(stderr.trim().to_owned())),
        _ => panic!("{script} failed ({}):\n{stderr}", output.status),
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let release = fs::read_to_string(dir.join("release"))
        .unwrap_or_else(|e| panic!("{}/release: {e}", dir.display()))
        .trim()
        .to_owned();
    Ok((dir, release))
}

/// Every `.ko` under `dir`, as (path relative to `dir`, bytes), sorted by path.
fn read_modules(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("read_dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".ko") {
                let relative = path.strip_prefix(dir).expect("under dir");
                let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                found.push((relative.to_string_lossy().into_owned(), bytes));
            }
        }
    }
    found.sort();
    found
}

/// Parses the modules on two threads (the machine has two cores).
fn parse_all(files: &[(String, Vec<u8>)]) -> Vec<ModuleInfo> {
    let half = files.len().div_ceil(2).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = files
            .chunks(half)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(path, bytes)| {
                            ModuleInfo::parse(path, bytes).unwrap_or_else(|e| panic!("{e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("parser thread"))
            .collect()
    })
}

/// The package files depmod reads besides the modules; `None` leaves a
/// file out.
#[derive(Clone, Default)]
struct Inputs {
    order: Option<String>,
    builtin: Option<String>,
    builtin_modinfo: Option<Vec<u8>>,
}

impl Inputs {
    /// The files of the kernel package in `dir`.
    fn read(dir: &Path) -> Self {
        Self {
            order: Some(fs::read_to_string(dir.join(INPUT_FILES[0])).expect("modules.order")),
            builtin: Some(fs::read_to_string(dir.join(INPUT_FILES[1])).expect("modules.builtin")),
            builtin_modinfo: Some(fs::read(dir.join(INPUT_FILES[2])).expect("builtin.modinfo")),
        }
    }

    fn files(&self) -> [(&str, Option<&[u8]>); 3] {
        [
            (INPUT_FILES[0], self.order.as_deref().map(str::as_bytes)),
            (INPUT_FILES[1], self.builtin.as_deref().map(str::as_bytes)),
            (INPUT_FILES[2], self.builtin_modinfo.as_deref()),
        ]
    }
}

/// `BASE/lib/modules/RELEASE/` holding `modules` (hard links to the files
/// in `source`, or copies) and `inputs`.
fn make_base(
    base: &Path,
    release: &str,
    source: &Path,
    modules: &[&ModuleInfo],
    inputs: &Inputs,
) -> PathBuf {
    let dir = base.join("lib/modules").join(release);
    fs::create_dir_all(&dir).expect("mkdir");
    for module in modules {
        let to = dir.join(&module.path);
        fs::create_dir_all(to.parent().expect("module has a directory")).expect("mkdir");
        let from = source.join(&module.path);
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        }
    }
    for (name, contents) in inputs.files() {
        if let Some(contents) = contents {
            fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    dir
}

/// Runs `tool args`, returning stdout and stderr with `base` replaced by
/// `BASE` (the two trees under comparison live in different places) and the
/// exit code.
fn run(tool: &str, args: &[String], base: &Path) -> (String, String, Option<i32>) {
    let output = Command::new(system_tool(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let base = base.to_string_lossy();
    let clean = |b: &[u8]| String::from_utf8_lossy(b).replace(base.as_ref(), "BASE");
    (
        clean(&output.stdout),
        clean(&output.stderr),
        output.status.code(),
    )
}

/// A concrete string that the alias pattern `pattern` matches, the way a
/// device's modalias would: `*` as nothing, `?` and a `[...]` class as one
/// character. `None` for negated classes (none occur in practice).
fn instance(pattern: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => {}
            '?' => out.push('0'),
            '[' => {
                let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let first = class.chars().next()?;
                if first == '!' || first == '^' {
                    return None;
                }
                out.push(first);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Real modaliases of the devices a banger guest has (qemu's virtio-net,
/// virtio-blk and vhost-vsock PCI devices, legacy and modern, and the
/// devices on the virtio bus).
const DEVICE_ALIASES: [&str; 6] = [
    "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
    "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00",
    "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00",
    "virtio:d00000001v00001AF4",
    "virtio:d00000002v00001AF4",
    "virtio:d00000013v00001AF4",
];

/// Compares depmod's files with ours byte for byte, then the lookups of the
/// two trees through modprobe.
fn compare(label: &str, release: &str, source: &Path, modules: &[&ModuleInfo], inputs: &Inputs) {
    let work = tempfile::tempdir().expect("tempdir");
    let depmod_base = work.path().join("depmod");
    let ours_base = work.path().join("ours");
    let depmod_dir = make_base(&depmod_base, release, source, modules, inputs);
    let ours_dir = make_base(&ours_base, release, source, modules, inputs);

    let started = Instant::now();
    let args = [
        "-b".to_owned(),
        depmod_base.display().to_string(),
        release.to_owned(),
    ];
    let (_, stderr, code) = run("depmod", &args, &depmod_base);
    assert_eq!(code, Some(0), "{label}: depmod failed: {stderr}");
    let depmod_time = started.elapsed();

    let started = Instant::now();
    let infos: Vec<ModuleInfo> = modules.iter().map(|&m| m.clone()).collect();
    let files = generate(&DepmodInput {
        modules: &infos,
        modules_order: inputs.order.as_deref(),
        modules_builtin: inputs.builtin.as_deref(),
        modules_builtin_modinfo: inputs.builtin_modinfo.as_deref(),
    })
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    eprintln!(
        "{label}: {} modules; depmod {:.2} s, ours {:.2} s (from parsed modules)",
        modules.len(),
        depmod_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, OUTPUT_FILES, "{label}: file list");
    for (name, bytes) in &files {
        let theirs = fs::read(depmod_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        if *bytes != theirs {
            let ours_path = work.path().join(format!("ours-{name}"));
            fs::write(&ours_path, bytes).expect("write ours");
            let kept = work.keep();
            panic!(
                "{label}: {name} differs from depmod's ({} vs {} bytes); both kept in {}",
                bytes.len(),
                theirs.len(),
                kept.display()
            );
        }
        fs::write(ours_dir.join(name), bytes).expect("write ours");
    }
    eprintln!("{label}: all {} files byte-equal to depmod's", files.len());

    // Lookups: the same questions to both trees, through libkmod's index
    // readers (modprobe reads only the .bin files and modules.softdep).
    let mut queries: Vec<(&str, &str, Vec<String>)> = Vec::new();
    let module_names: Vec<String> = infos.iter().map(|m| m.name.clone()).collect();
    queries.push(("modules", "--show-depends", module_names));
    if let Some(builtin) = &inputs.builtin {
        queries.push(("built-in modules", "--show-depends", builtin_names(builtin)));
    }
    let mut aliases: BTreeSet<String> = DEVICE_ALIASES.iter().map(|a| a.to_string()).collect();
    aliases.extend(infos.iter().flat_map(|m| m.aliases().filter_map(instance)));
    queries.push(("aliases", "-R", aliases.into_iter().collect()));
    let symbols: BTreeSet<String> = infos
        .iter()
        .flat_map(|m| m.exports.iter().map(|s| format!("symbol:{}", s.name)))
        .collect();
    queries.push(("symbols", "-R", symbols.into_iter().collect()));
    if let Some(modinfo) = &inputs.builtin_modinfo {
        let builtin_alias: BTreeSet<String> = builtin_aliases(modinfo)
            .iter()
            .filter_map(|(_, alias)| instance(alias))
            .collect();
        queries.push((
            "built-in aliases",
            "-R",
            builtin_alias.into_iter().collect(),
        ));
    }

    let mut compared = Vec::new();
    for (what, mode, names) in &queries {
        let ask = |base: &Path| {
            let mut args = vec![
                "-d".to_owned(),
                base.display().to_string(),
                "-S".to_owned(),
                release.to_owned(),
                mode.to_string(),
                "-a".to_owned(),
            ];
            args.extend(names.iter().cloned());
            run("modprobe", &args, base)
        };
        let theirs = ask(&depmod_base);
        let ours = ask(&ours_base);
        assert_eq!(
            theirs.2,
            Some(0),
            "{label}: modprobe {mode} on depmod's tree: {}",
            theirs.1
        );
        assert!(
            !theirs.0.is_empty(),
            "{label}: modprobe {mode} printed nothing"
        );
        assert_eq!(ours, theirs, "{label}: modprobe {mode} answers differ");
        compared.push(format!("{} {what}", names.len()));
    }
    eprintln!(
        "{label}: modprobe answers the same on both trees for {}",
        compared.join(", ")
    );
}

/// The closure of `wanted` by `modinfo -F depends`, followed recursively in
/// the depmod'd tree at `base`.
fn modinfo_closure(base: &Path, release: &str, wanted: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut deps = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
    while let Some(name) = todo.pop() {
        if deps.contains_key(&name) {
            continue;
        }
        let args = [
            "-b",
            &base.display().to_string(),
            "-k",
            release,
            "-F",
            "depends",
            &name,
        ]
        .map(str::to_owned);
        let (stdout, stderr, code) = run("modinfo", &args, base);
        assert_eq!(code, Some(0), "modinfo {name}: {stderr}");
        let direct: Vec<String> = stdout
            .trim()
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.replace('-', "_"))
            .collect();
        todo.extend(direct.iter().cloned());
        deps.insert(name, direct);
    }
    deps
}

#[test]
fn generated_files_equal_depmods_and_answer_the_same_lookups() {
    let missing: Vec<&str> = ["depmod", "modprobe", "modinfo"]
        .into_iter()
        .filter(|t| !system_tool(t).is_file())
        .collect();
    if !missing.is_empty() {
        Skip(format!("depmod test needs kmod's {}", missing.join(", "))).report();
        return;
    }
    let (kernel, release) = match guest_kernel() {
        Ok(k) => k,
        Err(skip) => {
            skip.report();
            return;
        }
    };
    let source = kernel.join("lib/modules").join(&release);

    let started = Instant::now();
    let files = read_modules(&source);
    let read_time = started.elapsed();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let started = Instant::now();
    let modules = parse_all(&files);
    eprintln!(
        "read {} modules ({:.1} MB) in {:.2} s, parsed in {:.2} s",
        files.len(),
        bytes as f64 / 1e6,
        read_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(files);
    for module in &modules {
        assert_eq!(module.release(), Some(release.as_str()), "{}", module.path);
    }

    // (a) The closure of GUEST_MODULES, checked against modinfo first.
    let inputs = Inputs::read(&source);
    let builtin = builtin_set(inputs.builtin.as_deref().expect("modules.builtin"));
    let picked = closure(&modules, GUEST_MODULES, &builtin).expect("closure");
    let picked: Vec<&ModuleInfo> = picked.iter().map(|&i| &modules[i]).collect();
    let work = tempfile::tempdir().expect("tempdir");
    let all: Vec<&ModuleInfo> = modules.iter().collect();
    let full_base = work.path().join("full");
    make_base(&full_base, &release, &source, &all, &inputs);
    let args = [
        "-b".to_owned(),
        full_base.display().to_string(),
        release.clone(),
    ];
    let (_, stderr, code) = run("depmod", &args, &full_base);
    assert_eq!(code, Some(0), "depmod of the full tree: {stderr}");
    let expected = modinfo_closure(&full_base, &release, GUEST_MODULES);
    let names: BTreeSet<&str> = picked.iter().map(|m| m.name.as_str()).collect();
    let expected_names: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(names, expected_names, "closure of GUEST_MODULES vs modinfo");
    // Each module comes after everything modinfo says it depends on.
    for (at, module) in picked.iter().enumerate() {
        for dep in &expected[&module.name] {
            let dep_at = picked
                .iter()
                .position(|m| &m.name == dep)
                .expect("dep picked");
            assert!(
                dep_at < at,
                "{} comes before its dependency {dep}",
                module.name
            );
        }
    }
    eprintln!("closure of GUEST_MODULES: {names:?}");
    compare("closure", &release, &source, &picked, &inputs);

    // The closure again, compressed with zstd (the host's kmod reads
    // .ko.zst; it is built without zlib, so .ko.gz cannot be compared).
    let zst_source = work.path().join("zst");
    let zst: Vec<ModuleInfo> = picked
        .iter()
        .map(|m| {
            let bytes = fs::read(source.join(&m.path)).expect("read module");
            let packed = zstd::encode_all(&bytes[..], 3).expect("zstd");
            let path = format!("{}.zst", m.path);
            let to = zst_source.join(&path);
            fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            fs::write(&to, &packed).expect("write");
            ModuleInfo::parse(&path, &packed).expect("parse .ko.zst")
        })
        .collect();
    let zst: Vec<&ModuleInfo> = zst.iter().collect();
    compare("closure, .ko.zst", &release, &zst_source, &zst, &inputs);

    // (b) The whole tree: as packaged; without any of the package's files
    // (modules then come in depmod's hash-table order, and the built-in
    // indexes are empty); and with a modules.order listing every third
    // module (those first, the rest in hash-table order).
    compare("whole tree", &release, &source, &all, &inputs);
    compare(
        "whole tree, no package files",
        &release,
        &source,
        &all,
        &Inputs::default(),
    );
    let partial: String = inputs
        .order
        .as_deref()
        .expect("modules.order")
        .lines()
        .step_by(3)
        .map(|line| format!("{line}\n"))
        .collect();
    let partial = Inputs {
        order: Some(partial),
        ..inputs.clone()
    };
    compare(
        "whole tree, partial modules.order",
        &release,
        &source,
        &all,
        &partial,
    );
}
