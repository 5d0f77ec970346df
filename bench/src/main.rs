//! `banger-bench`: times `banger rootfs` against the pipeline it replaces.
//!
//! In one run, side by side, on a debootstrap'd Debian packed as a
//! three-layer gzip OCI layout:
//! (a) `banger rootfs oci:…` (the release binary, warm page cache);
//! (b) the seed pipeline: `tar -x` per layer + whiteouts, `mkfs.ext4 -d`,
//!     a `debugfs` ownership pass;
//! (c) `mkfs.ext4 -d` alone from the already extracted tree;
//! (d) inflating every layer with banger's decompressor, one thread,
//!     output discarded: the least work any tool must do.
//! Then a cold pull from a loopback `docker-registry`: (f) `banger rootfs
//! REF` with an empty cache against (e) `skopeo copy` of the same image to
//! an `oci:` directory, the download alone. Then many small files, an npm
//! `node_modules` tree: (g) `banger rootfs tar:` against (h) `mkfs.ext4 -d`
//! and (i) hcsshim's `tar2ext4`, when `TAR2EXT4` names its binary.
//! Then the peak memory of (a) on an image whose only file is 4 GiB, and
//! per entry on trees of 300 000 directories and 10^6 files (`entries`).
//!
//! Usage: `scripts/bench [--runs N] [--out DIR] [--svg FILE] [--skip-big]
//! [--skip-entries] [--skip-cold-pull] [--skip-small-files] [--only-entries]
//! [--only-small-files]`.

mod chart;
mod cold_pull;
mod entries;
mod layout;
mod measure;
mod seed;
mod small_files;

use std::env;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use serde_json::json;

use crate::chart::Bar;
use crate::measure::{median, output, remove_dir, run_child, settle, ChildRun};

/// Size of the single file of the memory test image.
const BIG_FILE: u64 = 4 << 30;
/// Targets from the performance issue.
const TARGET_A_OVER_B: f64 = 0.2;
const TARGET_A_OVER_D: f64 = 1.5;
const TARGET_RSS_MIB: f64 = 150.0;
const TARGET_BIG_RSS_MIB: f64 = 200.0;

/// Command-line settings.
#[derive(Debug)]
struct Args {
    runs: usize,
    out: PathBuf,
    svg: PathBuf,
    big: bool,
    /// Measure memory per entry (trees of 300 000 and 10^6 entries).
    entries: bool,
    /// Only that.
    only_entries: bool,
    /// Time a cold pull from a loopback registry.
    cold_pull: bool,
    /// Time the npm node_modules tree.
    small_files: bool,
    /// Only that.
    only_small_files: bool,
}

fn parse_args() -> Result<Args, String> {
    let root = workspace_root();
    let mut args = Args {
        runs: 5,
        out: root.join("target/bench"),
        svg: root.join("docs/bench.svg"),
        big: true,
        entries: true,
        only_entries: false,
        cold_pull: true,
        small_files: true,
        only_small_files: false,
    };
    let mut it = env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => {
                args.runs = value("--runs")?
                    .parse()
                    .map_err(|_| "--runs takes a number".to_string())?;
                if args.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--svg" => args.svg = PathBuf::from(value("--svg")?),
            "--skip-big" => args.big = false,
            "--skip-entries" => args.entries = false,
            "--skip-cold-pull" => args.cold_pull = false,
            "--only-entries" => args.only_entries = true,
            "--skip-small-files" => args.small_files = false,
            "--only-small-files" => args.only_small_files = true,
            "-h" | "--help" => {
                return Err(
                    "usage: banger-bench [--runs N (5)] [--out DIR (target/bench)] \
                     [--svg FILE (docs/bench.svg)] [--skip-big] [--skip-entries] [--skip-cold-pull] \
                     [--skip-small-files] [--only-entries] [--only-small-files]; \
                     TAR2EXT4=PATH adds hcsshim's tar2ext4 to the small-files rows"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The machine the figures come from.
#[derive(Debug)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    kernel: String,
    memory_gib: f64,
    load_before: String,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let first_line = |path: &str| {
            fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: first_line("/proc/sys/kernel/osrelease"),
            memory_gib: memory_kib / (1 << 20) as f64,
            load_before: first_line("/proc/loadavg"),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} × {}, {:.0} GiB RAM, Linux {}",
            self.cpus, self.cpu_model, self.memory_gib, self.kernel
        )
    }
}

/// The debootstrap'd Debian tree the test suite also uses (built and
/// cached by `scripts/debootstrap-tree`, as `testkit::debootstrap_tree`).
fn debian_tree() -> io::Result<PathBuf> {
    let script = workspace_root().join("scripts/debootstrap-tree");
    let path = output(Command::new("bash").arg(script))?;
    Ok(PathBuf::from(path.trim()))
}

/// `target/release/banger`, next to this binary.
fn banger_binary() -> io::Result<PathBuf> {
    let exe = env::current_exe()?;
    let banger = exe.with_file_name("banger");
    if banger.is_file() {
        Ok(banger)
    } else {
        Err(io::Error::other(format!(
            "{} not found: build it first (cargo build --release -p banger), or use scripts/bench",
            banger.display()
        )))
    }
}

/// One `banger rootfs oci:LAYOUT:bench -o IMAGE --no-agents`, after [`settle`].
fn run_banger(banger: &Path, layout: &Path, image: &Path, cache: &Path) -> io::Result<ChildRun> {
    let _ = fs::remove_file(image);
    settle(layout)?;
    run_child(
        Command::new(banger)
            .arg("rootfs")
            .arg(format!("oci:{}:{}", layout.display(), layout::TAG))
            .arg("-o")
            .arg(image)
            .args(["--no-agents", "--quiet"])
            .env("BANGER_CACHE_DIR", cache)
            .stdout(Stdio::null()),
    )
}

/// (d): inflates each layer in turn with flate2's `MultiGzDecoder` (the
/// zlib-rs backend banger is built with) and throws the bytes away.
fn inflate_all(layout: &Path, layers: &[PathBuf]) -> io::Result<(Duration, u64)> {
    settle(layout)?;
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for layer in layers {
        let mut decoder = MultiGzDecoder::new(File::open(layer)?);
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((start.elapsed(), total))
}

/// The seed pipeline's extracted trees, one per run, under `seed-trees/`.
struct SeedTrees(PathBuf);

impl SeedTrees {
    /// Removes what an earlier bench run left, before anything is timed.
    fn new(out: &Path) -> io::Result<Self> {
        let trees = Self(out.join("seed-trees"));
        trees.remove()?;
        remove_dir(&out.join("seed-tree"))?; // an older bench's single tree
        Ok(trees)
    }

    fn for_run(&self, run: usize) -> PathBuf {
        self.0.join(run.to_string())
    }

    fn remove(&self) -> io::Result<()> {
        remove_dir(&self.0)
    }
}

/// (b): the seed pipeline into `image`, extracting into `tree`, a directory
/// not made yet ([`SeedTrees::for_run`]).
fn seed_pipeline(
    layout: &Path,
    layers: &[PathBuf],
    tree: &Path,
    image: &Path,
    size: u64,
    scratch: &Path,
) -> io::Result<Duration> {
    fs::create_dir_all(tree)?;
    let _ = fs::remove_file(image);
    settle(layout)?;
    let start = Instant::now();
    seed::extract(layers, tree)?;
    seed::mkfs(tree, image, size)?;
    seed::set_owners(tree, image, scratch)?;
    Ok(start.elapsed())
}

/// `e2fsck -fn`: a clean image prints its version, five passes and a summary.
pub(crate) fn fsck(image: &Path) -> io::Result<(bool, String)> {
    let out = Command::new("e2fsck").arg("-fn").arg(image).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected = text.lines().filter(|l| {
        !(l.starts_with("e2fsck ")
            || l.starts_with("Pass ")
            || l.contains(" files (")
            || l.trim().is_empty())
    });
    let clean = out.status.success() && unexpected.count() == 0;
    Ok((clean, text))
}

/// Apparent and allocated bytes of a file.
fn sizes(path: &Path) -> io::Result<(u64, u64)> {
    let meta = fs::metadata(path)?;
    Ok((meta.len(), meta.blocks() * 512))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn layer_bytes(layers: &[PathBuf]) -> io::Result<u64> {
    layers.iter().map(|l| Ok(fs::metadata(l)?.len())).sum()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn run(args: &Args) -> io::Result<()> {
    let machine = Machine::probe();
    fs::create_dir_all(&args.out)?;
    let out = fs::canonicalize(&args.out)?;
    let cache = out.join("cache");
    let banger = banger_binary()?;
    if args.only_entries {
        let (baseline, runs) = entries::measure(&banger, &out)?;
        print_entries(baseline, &runs);
        return Ok(());
    }
    let tar2ext4 = small_files::tar2ext4_binary()?;
    if args.only_small_files {
        let measured = small_files::measure(&banger, tar2ext4.as_deref(), &out, args.runs)?;
        measured.print();
        return Ok(());
    }

    eprintln!("bench: Debian tree and its OCI layout");
    let tree = debian_tree()?;
    let layout = out.join("debian-oci");
    let layers = layout::debian_layout(&tree, &layout)?;
    let compressed = layer_bytes(&layers)?;

    let image_a = out.join("a-banger.ext4");
    let image_b = out.join("b-seed.ext4");
    let image_c = out.join("c-mkfs.ext4");
    // A fresh directory per run, all removed at the end: extracting into
    // inodes freed minutes before is slow on the host's ext4 (its inode
    // allocator checks each recently deleted inode's dtime in the inode
    // table: perf shows `recently_deleted` and `find_get_block_common`), so
    // reusing one directory made each run's extraction seconds slower than
    // the last.
    let seed_trees = SeedTrees::new(&out)?;

    // Warm-up: fills the page cache with the blobs (and the blob cache,
    // which oci: layouts do not use: their blobs are read in place).
    let warm = run_banger(&banger, &layout, &image_a, &cache)?;
    let size = fs::metadata(&image_a)?.len();
    eprintln!(
        "bench: warm-up {:.2} s, image {} MiB",
        secs(warm.wall),
        size >> 20
    );

    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rss = Vec::new();
    let mut uncompressed = 0;
    for run in 1..=args.runs {
        let banger_run = run_banger(&banger, &layout, &image_a, &cache)?;
        a.push(banger_run.wall);
        rss.push(banger_run.max_rss_kib);
        let seed_tree = seed_trees.for_run(run);
        b.push(seed_pipeline(
            &layout, &layers, &seed_tree, &image_b, size, &out,
        )?);
        let _ = fs::remove_file(&image_c);
        settle(&seed_tree)?;
        let start = Instant::now();
        seed::mkfs(&seed_tree, &image_c, size)?;
        c.push(start.elapsed());
        let (inflate, bytes) = inflate_all(&layout, &layers)?;
        d.push(inflate);
        uncompressed = bytes;
        eprintln!(
            "bench: run {run}/{}: a {:.2} s ({:.0} MiB)  b {:.2} s  c {:.2} s  d {:.2} s",
            args.runs,
            secs(banger_run.wall),
            mib(banger_run.max_rss_kib),
            secs(b[run - 1]),
            secs(c[run - 1]),
            secs(inflate)
        );
    }
    let (ma, mb, mc, md) = (median(&a), median(&b), median(&c), median(&d));
    let a_over_b = secs(ma) / secs(mb);
    let a_over_d = secs(ma) / secs(md);
    let peak_rss = rss.iter().copied().max().unwrap_or(0);

    let (fsck_clean, fsck_text) = fsck(&image_a)?;
    if !fsck_clean {
        eprintln!("bench: e2fsck -fn on banger's image is NOT clean:\n{fsck_text}");
    }
    let (apparent, allocated) = sizes(&image_a)?;
    let (seed_apparent, seed_allocated) = sizes(&image_b)?;

    let cold = match (args.cold_pull, cold_pull::missing_tools()) {
        (false, _) => None,
        (true, Some(why)) => {
            eprintln!("bench: skipping the cold pull: {why}");
            None
        }
        (true, None) => {
            eprintln!("bench: cold pulls from a loopback docker-registry");
            Some(cold_pull::measure(&banger, &layout, &out, args.runs)?)
        }
    };
    let small = match (args.small_files, small_files::missing_tools()) {
        (false, _) => None,
        (true, Some(why)) => {
            eprintln!("bench: skipping the node_modules rows: {why}");
            None
        }
        (true, None) => {
            eprintln!("bench: many small files (an npm node_modules tree)");
            Some(small_files::measure(
                &banger,
                tar2ext4.as_deref(),
                &out,
                args.runs,
            )?)
        }
    };
    let memory = if args.entries {
        eprintln!("bench: memory per entry (300 000 directories, 10^6 files)");
        Some(entries::measure(&banger, &out)?)
    } else {
        None
    };
    let big = if args.big {
        eprintln!("bench: the {} GiB single-file image", BIG_FILE >> 30);
        let big_layout = out.join("big-oci");
        layout::big_file_layout(&big_layout, BIG_FILE)?;
        let big_image = out.join("big.ext4");
        let big_run = run_banger(&banger, &big_layout, &big_image, &cache)?;
        let (clean, text) = fsck(&big_image)?;
        if !clean {
            eprintln!("bench: e2fsck -fn on the big image is NOT clean:\n{text}");
        }
        let (big_apparent, big_allocated) = sizes(&big_image)?;
        fs::remove_file(&big_image)?;
        Some(json!({
            "file_bytes": BIG_FILE,
            "seconds": secs(big_run.wall),
            "peak_rss_mib": mib(big_run.max_rss_kib),
            "fsck_clean": clean,
            "image_apparent_bytes": big_apparent,
            "image_allocated_bytes": big_allocated,
        }))
    } else {
        None
    };
    // The seed trees are 260 MB of scratch each: keep only the images.
    seed_trees.remove()?;

    let labels = [
        "(a) banger rootfs oci: (warm)",
        "(b) tar -x + whiteouts + mkfs.ext4 -d + debugfs",
        "(c) mkfs.ext4 -d from the extracted tree",
        "(d) inflate all layers (zlib-rs, 1 thread)",
    ];
    let results = json!({
        "machine": {
            "cpus": machine.cpus, "cpu_model": machine.cpu_model, "kernel": machine.kernel,
            "memory_gib": machine.memory_gib, "loadavg_before": machine.load_before,
        },
        "input": {
            "layers": layers.len(), "compressed_bytes": compressed,
            "uncompressed_bytes": uncompressed, "image_bytes": size,
        },
        "runs": args.runs,
        "seconds": {
            "a_banger": a.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "b_seed_pipeline": b.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "c_mkfs_d": c.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "d_inflate": d.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        },
        "median_seconds": {
            "a_banger": secs(ma), "b_seed_pipeline": secs(mb),
            "c_mkfs_d": secs(mc), "d_inflate": secs(md),
        },
        "ratios": {"a_over_b": a_over_b, "a_over_d": a_over_d},
        "a_peak_rss_mib": mib(peak_rss),
        "a_fsck_clean": fsck_clean,
        "a_image": {"apparent_bytes": apparent, "allocated_bytes": allocated},
        "b_image": {"apparent_bytes": seed_apparent, "allocated_bytes": seed_allocated},
        "big_file": big,
        "cold_pull": cold.as_ref().map(cold_pull::ColdPull::to_json),
        "small_files": small.as_ref().map(small_files::SmallFiles::to_json),
        "memory_per_entry": memory.as_ref().map(|(baseline, runs)| entries::to_json(*baseline, runs)),
    });
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;

    let medians = [ma, mb, mc, md];
    let colours = ["#2b7bb9", "#c0504d", "#e08b3e", "#7f7f7f"];
    let mut bars: Vec<Bar> = labels
        .iter()
        .zip(medians)
        .zip(colours)
        .map(|((label, m), colour)| Bar {
            label: label.to_string(),
            seconds: secs(m),
            colour,
        })
        .collect();
    if let Some(cold) = &cold {
        let (banger_cold, download) = cold.medians();
        bars.push(Bar {
            label: "(e) skopeo copy from a local registry".into(),
            seconds: download,
            colour: "#9bbb59",
        });
        bars.push(Bar {
            label: "(f) banger rootfs from it, empty cache".into(),
            seconds: banger_cold,
            colour: "#1f4e79",
        });
    }
    if let Some(small) = &small {
        let colours = ["#2b7bb9", "#e08b3e", "#8064a2", "#b3a2c7"];
        for ((label, seconds), colour) in small.bars().into_iter().zip(colours) {
            bars.push(Bar {
                label,
                seconds,
                colour,
            });
        }
    }
    let title = format!(
        "Debian bookworm rootfs, {} gzip layers ({} MiB){}: median of {} runs",
        layers.len(),
        compressed >> 20,
        small.as_ref().map_or(String::new(), |s| format!(
            "; node_modules, {} entries",
            s.entries
        )),
        args.runs
    );
    if let Some(parent) = args.svg.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&args.svg, chart::render(&title, &bars, &machine.line()))?;

    println!("| | median (s) | ratio to (a) |");
    println!("|---|---:|---:|");
    for (i, (label, m)) in labels.iter().zip(medians).enumerate() {
        let ratio = if i == 0 {
            "1".to_string()
        } else {
            format!("a/{} = {:.3}", (b'a' + i as u8) as char, secs(ma) / secs(m))
        };
        println!("| {label} | {:.2} | {ratio} |", secs(m));
    }
    if let Some(cold) = &cold {
        cold.print();
    }
    if let Some(small) = &small {
        small.print();
    }
    println!();
    println!(
        "- a/b = {a_over_b:.3} (target ≤ {TARGET_A_OVER_B}: {}); a/d = {a_over_d:.3} (target ≤ {TARGET_A_OVER_D}: {})",
        verdict(a_over_b <= TARGET_A_OVER_B),
        verdict(a_over_d <= TARGET_A_OVER_D)
    );
    println!(
        "- peak RSS of (a): {:.0} MiB (target < {TARGET_RSS_MIB}: {})",
        mib(peak_rss),
        verdict(mib(peak_rss) < TARGET_RSS_MIB)
    );
    if let Some(big) = &results["big_file"].as_object() {
        let rss = big["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
        println!(
            "- peak RSS of banger on an image with one {} GiB file: {rss:.0} MiB in {:.1} s (target < {TARGET_BIG_RSS_MIB}: {}); e2fsck -fn {}",
            BIG_FILE >> 30,
            big["seconds"].as_f64().unwrap_or(f64::NAN),
            verdict(rss < TARGET_BIG_RSS_MIB),
            if big["fsck_clean"].as_bool() == Some(true) { "clean" } else { "NOT clean" }
        );
    }
    println!(
        "- (a)'s image: {} MiB apparent, {} MiB allocated (sparse); e2fsck -fn {}. The seed's: {} MiB allocated",
        apparent >> 20,
        allocated >> 20,
        if fsck_clean { "clean" } else { "NOT clean" },
        seed_allocated >> 20
    );
    println!(
        "- input: {} MiB of gzip layers, {} MiB of tar; machine: {} (load before: {})",
        compressed >> 20,
        uncompressed >> 20,
        machine.line(),
        machine.load_before
    );
    if let Some((baseline, runs)) = &memory {
        print_entries(*baseline, runs);
    }
    eprintln!(
        "bench: wrote {} and {}",
        out.join("results.json").display(),
        args.svg.display()
    );
    Ok(())
}

/// README lines for the memory-per-entry runs.
fn print_entries(baseline_kib: u64, runs: &[entries::EntriesRun]) {
    for run in runs {
        println!(
            "- {}: peak RSS {:.0} MiB, {} bytes per entry above the {:.0} MiB baseline, {:.1} s; e2fsck -fn {}",
            run.label,
            mib(run.max_rss_kib),
            entries::bytes_per_entry(run, baseline_kib),
            mib(baseline_kib),
            run.seconds,
            if run.fsck_clean { "clean" } else { "NOT clean" }
        );
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("banger-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
