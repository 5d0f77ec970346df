//! Throughput of writing file data into an image, next to a plain copy of
//! the same bytes to a file on the same disk.
//!
//! `cargo bench -p banger-ext4 --bench write` (set `BENCH_DIR` to choose the
//! disk; defaults to the target directory). Both sides end with an fsync.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_ext4::builder::{ImageBuilder, Options};
use banger_ext4::tree::{ContentSource, FileContent, Metadata, NodeKind, Timestamp, Tree};

const TOTAL: u64 = 1 << 30;
const FILE_SIZE: u64 = 4 << 20;
const RUNS: usize = 3;

/// Incompressible-looking bytes generated on the fly, so the benchmark
/// holds no file in memory.
#[derive(Debug)]
struct Generated {
    len: u64,
    seed: u64,
}

fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut x = seed ^ (offset / 8 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

impl ContentSource for Generated {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - offset.min(self.len)) as usize);
        fill(self.seed, offset, &mut buf[..n]);
        Ok(n)
    }
}

fn image_run(dir: &Path) -> Duration {
    let time = Timestamp::from_secs(0);
    let mut tree = Tree::new(Metadata::new(0o755, time));
    for i in 0..TOTAL / FILE_SIZE {
        let source = Generated {
            len: FILE_SIZE,
            seed: i,
        };
        let node = tree.add(
            NodeKind::File(FileContent::Source(Arc::new(source))),
            Metadata::new(0o644, time),
        );
        tree.link(Tree::ROOT, format!("f{i}").as_bytes(), node)
            .expect("valid name");
    }
    let path = dir.join("bench.img");
    let start = Instant::now();
    let file = File::create(&path).expect("create image");
    let sync = file.try_clone().expect("clone handle");
    ImageBuilder::new(file, Options::default())
        .and_then(|b| b.finish(&tree))
        .expect("image written");
    sync.sync_all().expect("fsync");
    let elapsed = start.elapsed();
    std::fs::remove_file(&path).ok();
    elapsed
}

fn copy_run(dir: &Path) -> Duration {
    let path = dir.join("bench.copy");
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut file = File::create(&path).expect("create copy");
    for i in 0..TOTAL / FILE_SIZE {
        let mut offset = 0;
        while offset < FILE_SIZE {
            fill(i, offset, &mut buf);
            file.write_all(&buf).expect("write");
            offset += buf.len() as u64;
        }
    }
    file.sync_all().expect("fsync");
    let elapsed = start.elapsed();
    std::fs::remove_file(&path).ok();
    elapsed
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mb = TOTAL as f64 / 1e6;
    let image = median((0..RUNS).map(|_| image_run(&dir)).collect());
    let copy = median((0..RUNS).map(|_| copy_run(&dir)).collect());
    println!(
        "data written: {} MiB in {} files of {} MiB, median of {RUNS} runs, fsync included",
        TOTAL >> 20,
        TOTAL / FILE_SIZE,
        FILE_SIZE >> 20
    );
    println!(
        "banger-ext4 image: {:>8.1} MB/s ({:.2} s)",
        mb / image.as_secs_f64(),
        image.as_secs_f64()
    );
    println!(
        "plain file copy:   {:>8.1} MB/s ({:.2} s)",
        mb / copy.as_secs_f64(),
        copy.as_secs_f64()
    );
    println!(
        "ratio image/copy:  {:>8.2}",
        image.as_secs_f64() / copy.as_secs_f64()
    );
}
