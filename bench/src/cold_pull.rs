//! The cold pull: `banger rootfs REF` with an empty blob cache against the
//! download alone, `skopeo copy docker://REF oci:DIR`, both from Debian's
//! `docker-registry` on a loopback port, alternating within one run.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::layout;
use crate::measure::{median, output, remove_dir, run_child, settle};

/// The repository the Debian layout is pushed to.
const REPOSITORY: &str = "bench/debian";

/// Times of the alternating runs.
#[derive(Debug, Default)]
pub struct ColdPull {
    /// `banger rootfs REF -o IMAGE --no-agents`, empty blob cache.
    pub banger: Vec<Duration>,
    /// Peak RSS of each banger run, in KiB.
    pub banger_rss_kib: Vec<u64>,
    /// `skopeo copy docker://REF oci:DIR`, into an empty directory.
    pub skopeo: Vec<Duration>,
}

/// Why the cold pull cannot be measured here, when it cannot.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["docker-registry", "skopeo"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (scripts/install-test-deps installs them)",
            missing.join(" and ")
        )
    })
}

/// Pushes `layout` to a fresh registry under `out` and times `runs` cold
/// pulls of each kind, alternating.
pub fn measure(banger: &Path, layout: &Path, out: &Path, runs: usize) -> io::Result<ColdPull> {
    let registry = Registry::start(&out.join("registry"))?;
    let reference = format!("127.0.0.1:{}/{REPOSITORY}:{}", registry.port, layout::TAG);
    output(
        Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{}", layout.display(), layout::TAG))
            .arg(format!("docker://{reference}")),
    )?;
    let cache = out.join("cold-cache");
    let image = out.join("cold.ext4");
    let copy = out.join("skopeo-oci");
    let mut times = ColdPull::default();
    // What both tools read: the registry's storage.
    let stored = registry.dir.join("data");
    for run in 1..=runs {
        remove_dir(&copy)?;
        settle(&stored)?;
        let skopeo = run_child(
            Command::new("skopeo")
                .args([
                    "copy",
                    "--quiet",
                    "--insecure-policy",
                    "--src-tls-verify=false",
                ])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:{}", copy.display(), layout::TAG))
                .stdout(Stdio::null()),
        )?;
        remove_dir(&cache)?;
        let _ = fs::remove_file(&image);
        settle(&stored)?;
        let pull = run_child(
            Command::new(banger)
                .args(["rootfs", &reference, "-o"])
                .arg(&image)
                .args(["--no-agents", "--quiet"])
                .env("BANGER_CACHE_DIR", &cache)
                .stdout(Stdio::null()),
        )?;
        eprintln!(
            "bench: cold pull {run}/{runs}: banger {:.2} s, skopeo copy {:.2} s",
            pull.wall.as_secs_f64(),
            skopeo.wall.as_secs_f64()
        );
        times.banger.push(pull.wall);
        times.banger_rss_kib.push(pull.max_rss_kib);
        times.skopeo.push(skopeo.wall);
    }
    remove_dir(&copy)?;
    remove_dir(&cache)?;
    fs::remove_file(&image)?;
    Ok(times)
}

/// `docker-registry serve` on a free loopback port, its storage in a
/// directory of its own; stopped and removed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> io::Result<Self> {
        remove_dir(dir)?;
        fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("data").display()
            ),
        )?;
        let log = fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let registry = Self {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !registry.answers() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "docker-registry did not answer on port {port} (see {})",
                    dir.join("registry.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    /// True once `GET /v2/` answers 200.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = String::new();
        stream
            .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_ok()
            && stream.read_to_string(&mut reply).is_ok()
            && reply.get(8..).is_some_and(|rest| rest.starts_with(" 200"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The goal: a cold pull at most this many times the download alone.
const TARGET_PULL_OVER_DOWNLOAD: f64 = 1.15;

impl ColdPull {
    /// Median seconds of banger's cold pulls and of skopeo's copies.
    pub fn medians(&self) -> (f64, f64) {
        (
            median(&self.banger).as_secs_f64(),
            median(&self.skopeo).as_secs_f64(),
        )
    }

    /// The figures for `results.json`.
    pub fn to_json(&self) -> Value {
        let seconds =
            |runs: &[Duration]| runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        let (banger, skopeo) = self.medians();
        json!({
            "banger_seconds": seconds(&self.banger),
            "skopeo_copy_seconds": seconds(&self.skopeo),
            "median_seconds": {"banger": banger, "skopeo_copy": skopeo},
            "banger_over_download": banger / skopeo,
            "banger_peak_rss_mib": self.banger_rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0,
        })
    }

    /// README lines.
    pub fn print(&self) {
        let (banger, skopeo) = self.medians();
        let ratio = banger / skopeo;
        println!("| (e) skopeo copy docker:// to oci: (the download alone) | {skopeo:.2} | |");
        println!("| (f) banger rootfs REF, empty cache | {banger:.2} | f/e = {ratio:.3} |");
        println!(
            "- cold pull: f/e = {ratio:.3} (target ≤ {TARGET_PULL_OVER_DOWNLOAD}: {})",
            if ratio <= TARGET_PULL_OVER_DOWNLOAD {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}
