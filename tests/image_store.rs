//! `banger image` / `banger kernel` end to end: the real binary against a real
//! registry (Debian's docker-registry), with SIGKILL at every step that matters.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use banger_testkit::{assert_fsck_clean, Tmpfs};
use serde_json::Value;
use support::oci::{build_layout, Comp, ImageSpec, LayerSpec};
use support::registry::TestRegistry;

const VMLINUX: &[u8] = b"\x7fELF fake vmlinux for tests";
const INITRD: &[u8] = b"fake initramfs";

/// One isolated banger installation: state, cache and HOME in a temp dir.
struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vars = vec![
            (
                "BANGER_STATE_DIR".into(),
                dir.path().join("state").display().to_string(),
            ),
            (
                "BANGER_CACHE_DIR".into(),
                dir.path().join("cache").display().to_string(),
            ),
            ("HOME".into(), dir.path().join("home").display().to_string()),
        ];
        Env { dir, vars }
    }

    fn with_state(mut self, state: &Path) -> Self {
        self.vars[0].1 = state.display().to_string();
        self
    }

    fn with_cache(mut self, cache: &Path) -> Self {
        self.vars[1].1 = cache.display().to_string();
        self
    }

    fn set(&mut self, key: &str, value: &str) {
        self.vars.push((key.into(), value.into()));
    }

    fn state(&self) -> PathBuf {
        PathBuf::from(&self.vars[0].1)
    }

    fn cache(&self) -> PathBuf {
        PathBuf::from(&self.vars[1].1)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banger"));
        command
            .args(args)
            .env_remove("BANGER_TEST_PAUSE_AT")
            .env_remove("BANGER_TEST_RESUME_FILE")
            .env_remove("BANGER_CATALOG")
            .env_remove("BANGER_KERNEL_CATALOG")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        command
    }

    /// Runs banger, failing the test if it takes more than a minute (a stale lock
    /// would make it hang).
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("banger {args:?} hung (stale lock?)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Runs banger, expecting success; returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "banger {args:?} failed: {stderr}");
        (stdout, stderr)
    }

    /// Runs banger, expecting exit `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "banger {args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
        stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).0).unwrap()
    }

    fn list(&self) -> Vec<String> {
        let list = self.json(&["image", "list", "--json"]);
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Non-hidden entries of a state subdirectory.
    fn entries(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state().join(sub))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        names
    }

    /// The store agrees with itself: listed images are exactly the directories,
    /// each directory's record.json is the row, each rootfs passes e2fsck, and no
    /// staging directory or tombstone is left.
    fn assert_consistent(&self) {
        let listed = self.list();
        assert_eq!(listed, self.entries("images"), "rows vs directories");
        assert_eq!(self.entries("images/.staging"), Vec::<String>::new());
        assert_eq!(self.entries("images/.trash"), Vec::<String>::new());
        for name in &listed {
            let shown = self.json(&["image", "show", name, "--json"]);
            let dir = self.state().join("images").join(name);
            let record: Value =
                serde_json::from_slice(&std::fs::read(dir.join("record.json")).unwrap()).unwrap();
            assert_eq!(shown["pull_id"], record["pull_id"], "{name}");
            assert_fsck_clean(&dir.join("rootfs.ext4"));
        }
    }
}

fn image_layers(tag: &str) -> Vec<LayerSpec> {
    let hostname = format!("{tag}\n");
    vec![
        LayerSpec::new(
            Comp::Gzip,
            &[
                ("etc/os-release", b"ID=test\n"),
                ("bin/tool", &[7u8; 100_000]),
            ],
        ),
        LayerSpec::new(Comp::Zstd, &[("etc/hostname", hostname.as_bytes())]),
    ]
}

/// Pushes a small two-layer image to `repo:tag`.
fn push_image(registry: &TestRegistry, work: &Path, repo: &str, tag: &str) -> String {
    let dir = work.join(format!("layout-{}-{tag}", repo.replace('/', "-")));
    let images = [ImageSpec::new("linux/amd64", image_layers(tag))];
    registry.push_images(&dir, repo, tag, &images, &[]).1
}

/// Pushes a kernel artifact (vmlinux, initrd, modules) to `repo:tag`.
fn push_kernel(registry: &TestRegistry, repo: &str, tag: &str) -> Vec<u8> {
    let modules = support::oci::compress(
        &support::oci::layer_tar(&[("6.1.0/modules.dep".into(), b"".to_vec())]),
        Comp::Gzip,
    );
    registry.push_artifact(
        repo,
        tag,
        banger::store::kernel::KERNEL_ARTIFACT_TYPE,
        (
            br#"{"release":"6.1.0"}"#,
            banger::store::kernel::KERNEL_CONFIG,
        ),
        &[
            (VMLINUX, banger::store::kernel::VMLINUX),
            (INITRD, banger::store::kernel::INITRD),
            (&modules, banger::store::kernel::MODULES),
        ],
    );
    modules
}

fn cached_blobs(cache: &Path) -> Vec<String> {
    support::cache_entries(cache)
}

#[test]
fn pull_list_show_force_rm_and_prune() {
    let Some(registry) = TestRegistry::start("pull_list_show_force_rm_and_prune") else {
        return;
    };
    let env = Env::new();
    let img = push_image(&registry, env.dir.path(), "team/img", "v1");
    let other = push_image(&registry, env.dir.path(), "team/other", "v2");

    let (_, stderr) = env.ok(&["image", "pull", &img]);
    assert!(
        stderr.contains("downloaded"),
        "plain log lines off a TTY: {stderr}"
    );
    assert_eq!(env.list(), ["img-v1"], "name derived from the reference");
    let shown = env.json(&["image", "show", "img-v1", "--json"]);
    assert_eq!(shown["source"], img.as_str());
    assert_eq!(shown["platform"], "linux/amd64");
    assert_eq!(shown["managed"], false);
    assert!(shown["kernel"].is_null());
    assert!(shown["manifest_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // Manifest, config and two layers.
    assert_eq!(shown["blobs"].as_array().unwrap().len(), 4, "{shown}");
    let rootfs = PathBuf::from(shown["rootfs"].as_str().unwrap());
    assert_eq!(shown["size"], std::fs::metadata(&rootfs).unwrap().len());
    env.assert_consistent();

    let err = env.fails(&["image", "pull", &img], 4);
    assert!(err.contains("--force"), "{err}");
    let (_, stderr) = env.ok(&["image", "pull", &img, "--force", "--no-agents"]);
    assert!(
        stderr.contains("cached") && !stderr.contains("downloaded"),
        "{stderr}"
    );
    let replaced = env.json(&["image", "show", "img-v1", "--json"]);
    assert_ne!(replaced["pull_id"], shown["pull_id"]);

    let bad = env.fails(&["image", "pull", &img, "--name", ".hidden"], 2);
    assert!(bad.contains("letter or digit"), "{bad}");
    env.fails(&["image", "pull", &img, "--name", "a/b"], 2);

    env.ok(&["image", "pull", &other, "--name", "other", "--quiet"]);
    assert_eq!(env.list(), ["img-v1", "other"]);
    let other_blobs = env.json(&["image", "show", "other", "--json"])["blobs"].clone();
    env.ok(&["image", "rm", "other"]);
    env.fails(&["image", "show", "other"], 3);
    env.fails(&["image", "rm", "other"], 3);
    env.assert_consistent();

    // other's manifest, config and its own layer are unreferenced now; the shared
    // first layer is still img-v1's.
    let before = cached_blobs(&env.cache());
    let dry = env.json(&["image", "cache", "prune", "--dry-run", "--json"]);
    let doomed: Vec<&str> = dry["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert_eq!(doomed.len(), 3, "{dry}");
    for digest in &doomed {
        assert!(other_blobs.as_array().unwrap().iter().any(|b| b == digest));
    }
    assert_eq!(
        cached_blobs(&env.cache()),
        before,
        "dry run deletes nothing"
    );
    let (stdout, stderr) = env.ok(&["cache", "prune"]);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(stderr.contains("freed 3 blobs"), "{stderr}");
    assert_eq!(cached_blobs(&env.cache()).len(), before.len() - 3);
    for blob in replaced["blobs"].as_array().unwrap() {
        let hex = &blob.as_str().unwrap()[7..];
        assert!(
            cached_blobs(&env.cache()).iter().any(|b| b == hex),
            "kept {blob}"
        );
    }
    // What is left is all referenced.
    let again = env.json(&["cache", "prune", "--dry-run", "--json"]);
    assert_eq!(again["blobs"].as_array().unwrap().len(), 0);
    env.assert_consistent();
}

#[test]
fn catalog_entries_pull_their_image_and_kernel_artifact() {
    let Some(registry) =
        TestRegistry::start("catalog_entries_pull_their_image_and_kernel_artifact")
    else {
        return;
    };
    let mut env = Env::new();
    let tiny = push_image(&registry, env.dir.path(), "library/tiny", "1.0");
    let modules = push_kernel(&registry, "kernels/linux", "6.1");
    let catalog = env.dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::json!({"version": 1, "images": {
            "tiny-1.0": {"source": tiny, "kernel": "k61"},
            "broken": {"source": tiny, "kernel": "not-a-kernel"},
        }})
        .to_string(),
    )
    .unwrap();
    let kernels = env.dir.path().join("kernels.json");
    std::fs::write(
        &kernels,
        serde_json::json!({"version": 1, "kernels": {
            "k61": {"source": format!("{}/kernels/linux:6.1", registry.host())},
            "not-a-kernel": {"source": tiny},
        }})
        .to_string(),
    )
    .unwrap();
    env.set("BANGER_CATALOG", &catalog.display().to_string());
    env.set("BANGER_KERNEL_CATALOG", &kernels.display().to_string());

    // The fake kernel's modules layer has no modules to write.
    env.ok(&["image", "pull", "tiny-1.0", "--modules", "none"]);
    let shown = env.json(&["image", "show", "tiny-1.0", "--json"]);
    assert_eq!(shown["managed"], true);
    // The human form says what `managed` means, under the source.
    let (human, _) = env.ok(&["image", "show", "tiny-1.0"]);
    assert!(
        human.starts_with(&format!(
            "name        tiny-1.0\nsource      {tiny}\n            (a catalog image: `banger image pull` can update it)\ndigest      "
        )),
        "{human}"
    );
    assert_eq!(shown["kernel"], "k61");
    let read = |key: &str| std::fs::read(shown[key].as_str().unwrap()).unwrap();
    assert_eq!(read("vmlinux"), VMLINUX);
    assert_eq!(read("initrd"), INITRD);
    assert_eq!(read("modules"), modules);
    let kernel_list = env.json(&["kernel", "list", "--json"]);
    assert_eq!(kernel_list[0]["name"], "k61");
    assert_eq!(
        kernel_list[0]["source"],
        format!("{}/kernels/linux:6.1", registry.host())
    );
    env.assert_consistent();

    // The kernel is installed once; a second image reuses it without the registry
    // serving the artifact again (its blobs are kept by prune too).
    env.ok(&[
        "image",
        "pull",
        "tiny-1.0",
        "--name",
        "tiny2",
        "--modules",
        "none",
    ]);
    assert_eq!(
        env.json(&["image", "show", "tiny2", "--json"])["kernel"],
        "k61"
    );
    env.ok(&["image", "rm", "tiny-1.0"]);
    env.ok(&["image", "rm", "tiny2"]);
    let dry = env.json(&["cache", "prune", "--dry-run", "--json"]);
    assert_eq!(
        dry["blobs"].as_array().unwrap().len(),
        4,
        "image blobs only: {dry}"
    );

    // A kernel-catalog entry that is a container image is refused, clearly.
    let err = env.fails(&["image", "pull", "broken", "--quiet"], 1);
    assert!(err.contains("artifact type"), "{err}");
    env.fails(&["image", "pull", "tiny-1.0", "--kernel-ref", "nope"], 3);
    env.assert_consistent();
}

#[test]
fn kernel_import_and_a_local_kernel_ref() {
    let env = Env::new();
    let work = env.dir.path();
    let layout = work.join("layout");
    build_layout(
        &layout,
        "v1",
        &[ImageSpec::new("linux/amd64", image_layers("local"))],
    );
    std::fs::write(work.join("vmlinux"), VMLINUX).unwrap();
    std::fs::write(work.join("initrd"), INITRD).unwrap();
    let modules = work.join("modules/6.1.0");
    std::fs::create_dir_all(modules.join("kernel")).unwrap();
    std::fs::write(modules.join("kernel/virtio.ko"), b"module").unwrap();
    let path = |p: &str| work.join(p).display().to_string();

    env.ok(&[
        "kernel",
        "import",
        "mine",
        "--kernel",
        &path("vmlinux"),
        "--initrd",
        &path("initrd"),
        "--modules",
        &modules.display().to_string(),
    ]);
    env.fails(
        &["kernel", "import", "mine", "--kernel", &path("vmlinux")],
        4,
    );
    let source = format!("oci:{}:v1", layout.display());
    // Its modules are not ELF: writing them is refused, and nothing is published.
    let err = env.fails(
        &["image", "pull", &source, "--kernel-ref", "mine", "--quiet"],
        1,
    );
    assert!(
        err.contains("cannot read the kernel's modules: kernel/virtio.ko: malformed module"),
        "{err}"
    );
    assert!(env.list().is_empty(), "a failed pull publishes nothing");
    env.ok(&[
        "image",
        "pull",
        &source,
        "--kernel-ref",
        "mine",
        "--modules",
        "none",
    ]);
    let shown = env.json(&["image", "show", "layout-v1", "--json"]);
    assert_eq!(shown["kernel"], "mine");
    assert_eq!(
        std::fs::read(shown["vmlinux"].as_str().unwrap()).unwrap(),
        VMLINUX
    );
    assert_eq!(
        std::fs::read(shown["initrd"].as_str().unwrap()).unwrap(),
        INITRD
    );
    let tarball = std::fs::File::open(shown["modules"].as_str().unwrap()).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("kernel/virtio.ko")),
        "{names:?}"
    );

    // Removing the kernel leaves the image's own copy.
    env.ok(&["kernel", "rm", "mine"]);
    env.fails(&["kernel", "rm", "mine"], 3);
    assert_eq!(
        std::fs::read(shown["vmlinux"].as_str().unwrap()).unwrap(),
        VMLINUX
    );
    env.fails(
        &[
            "image",
            "pull",
            &source,
            "--name",
            "x",
            "--kernel-ref",
            "mine",
        ],
        3,
    );
    env.assert_consistent();
}

/// Starts banger paused at `point`, waits for its marker, and SIGKILLs it.
fn kill_at(env: &Env, args: &[&str], point: &str) {
    let mut child = env
        .command(args)
        .env("BANGER_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let marker = format!("BANGER_TEST_PAUSED {point}");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line == marker {
                let _ = tx.send(Ok(()));
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        other => {
            let _ = child.kill();
            panic!("banger {args:?} never reached {point}: {other:?}");
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn sigkill_during_pull_leaves_no_half_image() {
    let Some(registry) = TestRegistry::start("sigkill_during_pull_leaves_no_half_image") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let img = push_image(&registry, work.path(), "team/img", "v1");
    let cache = work.path().join("shared-cache");
    for (point, published) in [
        ("staging", false),
        ("written", false),
        ("before-rename", false),
        ("before-commit", true),
    ] {
        let env = Env::new().with_cache(&cache);
        kill_at(&env, &["image", "pull", &img, "--name", "crash"], point);
        assert!(
            !env.entries("images/.staging").is_empty() || point == "before-commit",
            "{point}: the killed run left its staging directory"
        );
        // The next command reconciles: a published directory is rolled forward,
        // everything else is gone.
        let expected: Vec<String> = if published {
            vec!["crash".into()]
        } else {
            vec![]
        };
        assert_eq!(env.list(), expected, "{point}");
        env.assert_consistent();
        // And the next pull succeeds at once (no stale lock), from cached blobs
        // once the killed run had written them (layers download while the image
        // is written, so at "staging" they may not be).
        let (_, stderr) = env.ok(&["image", "pull", &img, "--name", "crash", "--force"]);
        assert!(
            point == "staging" || !stderr.contains("downloaded"),
            "{point}: blobs reused: {stderr}"
        );
        env.assert_consistent();
    }
}

#[test]
fn sigkill_during_rm_and_force_keeps_record_and_directory_together() {
    let Some(registry) =
        TestRegistry::start("sigkill_during_rm_and_force_keeps_record_and_directory_together")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let img = push_image(&registry, work.path(), "team/img", "v1");
    let cache = work.path().join("shared-cache");

    for point in ["rm-tombstone", "rm-committed"] {
        let env = Env::new().with_cache(&cache);
        env.ok(&["image", "pull", &img, "--name", "doomed", "--quiet"]);
        kill_at(&env, &["image", "rm", "doomed"], point);
        // rm rolls forward: the image is gone, row and directory alike.
        assert_eq!(env.list(), Vec::<String>::new(), "{point}");
        env.fails(&["image", "show", "doomed"], 3);
        env.assert_consistent();
        env.ok(&["image", "pull", &img, "--name", "doomed", "--quiet"]);
        env.assert_consistent();
    }

    for (point, new_wins) in [
        ("staging", false),
        ("before-rename", false),
        ("before-commit", true),
    ] {
        let env = Env::new().with_cache(&cache);
        env.ok(&["image", "pull", &img, "--name", "twice", "--quiet"]);
        let old = env.json(&["image", "show", "twice", "--json"])["pull_id"].clone();
        kill_at(
            &env,
            &["image", "pull", &img, "--name", "twice", "--force"],
            point,
        );
        assert_eq!(env.list(), ["twice"], "{point}: never neither");
        let now = env.json(&["image", "show", "twice", "--json"])["pull_id"].clone();
        assert_eq!(now != old, new_wins, "{point}");
        env.assert_consistent();
    }
}

/// `image show` for the committed busybox layout, normalised where a run
/// differs (the pull time, the state directory, the pull id).
fn normalised(env: &Env, text: &str, created: &Value) -> String {
    let mut text = text.replace(&env.state().display().to_string(), "$STATE");
    for key in ["created_at", "pull_id"] {
        if let Some(value) = created.get(key).and_then(Value::as_str) {
            text = text.replace(value, &format!("<{key}>"));
        }
    }
    if let Some(secs) = created.get("created").and_then(Value::as_i64) {
        text = text.replace(&format!("\"created\": {secs}"), "\"created\": <created>");
    }
    text
}

#[test]
fn image_show_and_kernel_list_read_as_documented() {
    let mut env = Env::new();
    env.set("TZ", "UTC");
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox");
    let source = format!("oci:{}:latest", layout.display());

    // Empty lists say so, on stderr, with the way out.
    let (stdout, stderr) = env.ok(&["kernel", "list"]);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "no kernels; import one with `banger kernel import NAME --kernel FILE`\n"
    );
    let (stdout, stderr) = env.ok(&["image", "list"]);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "no images; pull one with `banger image pull debian-bookworm`\n"
    );

    // A kernel whose setup header declares its release (boot.rst: "HdrS"
    // at 0x202, kernel_version at 0x20E pointing 0x200 before the string).
    let kernel = env.dir.path().join("vmlinuz");
    let mut image = vec![0u8; 0x400];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    image[0x300..0x31B].copy_from_slice(b"6.1.0-test (me@here) #1 SMP");
    std::fs::write(&kernel, &image).unwrap();
    env.ok(&[
        "kernel",
        "import",
        "k1",
        "--kernel",
        kernel.to_str().unwrap(),
    ]);
    let (table, _) = env.ok(&["kernel", "list"]);
    assert_eq!(
        table,
        "\
NAME                 RELEASE                  INITRD  MODULES  SOURCE
k1                   6.1.0-test               no      no       (imported from files)
"
    );
    let kernels = env.json(&["kernel", "list", "--json"]);
    let text = serde_json::to_string_pretty(&kernels).unwrap();
    assert_eq!(
        normalised(&env, &text, &kernels[0]),
        r#"[
  {
    "created": <created>,
    "created_at": "<created_at>",
    "initrd": false,
    "manifest_digest": null,
    "modules": false,
    "name": "k1",
    "path": "$STATE/kernels/k1",
    "release": "6.1.0-test",
    "source": null
  }
]"#
    );
    assert!(kernels[0]["created_at"]
        .as_str()
        .is_some_and(|t| t.len() == 20 && t.ends_with('Z')));

    env.ok(&[
        "image",
        "pull",
        &source,
        "--name",
        "bb",
        "--kernel-ref",
        "k1",
        "--modules",
        "none",
        "--quiet",
    ]);
    let shown = env.json(&["image", "show", "bb", "--json"]);
    let (human, _) = env.ok(&["image", "show", "bb"]);
    let pulled = human
        .lines()
        .find_map(|l| l.strip_prefix("pulled      "))
        .unwrap()
        .to_string();
    assert_eq!(
        pulled,
        shown["created_at"].as_str().unwrap(),
        "TZ=UTC: local is UTC"
    );
    // Under another zone the same instant reads in local time with its
    // offset: a POSIX TZ (no tzdata needed), UTC+5:30, as GNU date prints
    // the JSON's Unix time (which is the JSON's UTC `created_at`).
    let created = shown["created"].as_i64().unwrap();
    let date = |tz: &str, format: &str| {
        let out = Command::new("date")
            .arg(format!("--date=@{created}"))
            .arg(format)
            .env("TZ", tz)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(
        date("UTC0", "+%Y-%m-%dT%H:%M:%SZ"),
        shown["created_at"].as_str().unwrap()
    );
    let expected = date("IST-5:30", "--rfc-3339=seconds").replacen(' ', "T", 1);
    assert!(expected.ends_with("+05:30"), "{expected}");
    let out = env
        .command(&["image", "show", "bb"])
        .env("TZ", "IST-5:30")
        .output()
        .unwrap();
    assert!(out.status.success());
    let local = String::from_utf8(out.stdout).unwrap();
    assert!(
        local.contains(&format!("\npulled      {expected}\n")),
        "TZ=IST-5:30: pulled at {expected}:\n{local}"
    );
    assert_eq!(
        local.replace(&expected, &pulled),
        human,
        "only the time differs"
    );
    let human = human.replace(&pulled, "<created_at>");
    assert_eq!(
        normalised(&env, &human, &shown),
        format!(
            "\
name        bb
source      {source}
digest      sha256:7e1c64cb45a9527b57278efccb4987d8bf89859fb5aff0ce4c2a38a8486493f5
platform    linux/amd64
pulled      <created_at>
size        1.0 GiB (1073741824 bytes)
kernel      k1 (6.1.0-test)
path        $STATE/images/bb
files       rootfs.ext4, vmlinux
entrypoint  none
cmd         /bin/sh
env         PATH=/bin:/usr/bin
workdir     / (default)
user        root (default)
ports       none
init        banger (/sbin/init does not exist (there is no /sbin))
agents      banger-vsock-agent on vsock port 52, network set-up from ip=, first boot (OpenSSH)
modules     none written
"
        )
    );
    let text = serde_json::to_string_pretty(&shown).unwrap();
    assert_eq!(
        normalised(&env, &text, &shown),
        format!(
            r#"{{
  "blobs": [],
  "config": {{
    "cmd": [
      "/bin/sh"
    ],
    "entrypoint": [],
    "env": [
      "PATH=/bin:/usr/bin"
    ],
    "exposed_ports": [],
    "user": null,
    "working_dir": null
  }},
  "created": <created>,
  "created_at": "<created_at>",
  "guest": {{
    "init": "banger",
    "init_reason": "/sbin/init does not exist (there is no /sbin)",
    "kernel_release": null,
    "modules": [],
    "vsock_port": 52
  }},
  "initrd": null,
  "kernel": "k1",
  "kernel_release": "6.1.0-test",
  "managed": false,
  "manifest_digest": "sha256:7e1c64cb45a9527b57278efccb4987d8bf89859fb5aff0ce4c2a38a8486493f5",
  "modules": null,
  "name": "bb",
  "path": "$STATE/images/bb",
  "platform": "linux/amd64",
  "pull_id": "<pull_id>",
  "rootfs": "$STATE/images/bb/rootfs.ext4",
  "size": 1073741824,
  "source": "{source}",
  "vmlinux": "$STATE/images/bb/vmlinux"
}}"#
        )
    );
}

/// Fills the filesystem holding `path` with a file there, until it is full.
fn fill(path: &Path) {
    use std::io::Write;

    let mut file = std::fs::File::create(path).unwrap();
    // Big writes for speed, then page-sized ones to take the last partial chunk.
    for chunk in [1 << 20, 4096] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match file.write(&buf) {
                Ok(n) if n == chunk => {}
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    // Nothing more fits, not even a page.
    let err = file.write_all(&[0u8; 4096]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
}

/// Runs banger paused at `point`, calls `meanwhile` there, lets it go on, and
/// returns its exit code and stderr (without the pause marker).
fn pause_then_resume(
    env: &Env,
    args: &[&str],
    point: &str,
    meanwhile: impl FnOnce(),
) -> (Option<i32>, String) {
    let resume = env.dir.path().join("resume");
    let _ = std::fs::remove_file(&resume);
    let mut child = env
        .command(args)
        .env("BANGER_TEST_PAUSE_AT", point)
        .env("BANGER_TEST_RESUME_FILE", &resume)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let marker = format!("BANGER_TEST_PAUSED {point}");
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line == marker {
                let _ = tx.send(());
            } else {
                rest.push(line);
            }
        }
        rest
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "banger {args:?} never reached {point}: {}",
            reader.join().unwrap().join("\n")
        );
    }
    meanwhile();
    std::fs::write(&resume, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("banger {args:?} hung after resuming at {point}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let mut stderr = reader.join().unwrap().join("\n");
    stderr.push('\n');
    (status.code(), stderr)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Asserts a pull failed with one line saying the state database is full.
fn assert_database_full(code: Option<i32>, stderr: &str) {
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("database or disk is full"),
        "{stderr}"
    );
}

#[test]
fn a_pull_whose_record_cannot_be_written_publishes_nothing() {
    let Some(tmpfs) = Tmpfs::mount(
        "64m",
        "a_pull_whose_record_cannot_be_written_publishes_nothing",
    ) else {
        return;
    };
    // Only the state directory fills up: the blob cache lives elsewhere.
    let env = Env::new().with_state(&tmpfs.path().join("state"));
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox");
    let source = format!("oci:{}:latest", layout.display());
    let filler = tmpfs.path().join("filler");
    let pull = |force: bool| {
        let mut args = vec![
            "image".to_string(),
            "pull".into(),
            source.clone(),
            "--name".into(),
            "bb".into(),
            "--modules".into(),
            "none".into(),
            "--size".into(),
            "32M".into(),
            "--quiet".into(),
        ];
        if force {
            args.push("--force".into());
        }
        args
    };

    // A fresh pull: the directory is renamed into place, then the disk fills up
    // before the row is written. Neither must stay.
    let fresh = pull(false);
    let (code, stderr) = pause_then_resume(&env, &strs(&fresh), "before-commit", || fill(&filler));
    assert_database_full(code, &stderr);
    assert!(
        !env.state().join("images/bb").exists(),
        "published without a record: {stderr}"
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(env.list(), Vec::<String>::new());
    env.assert_consistent();
    // A retry is a fresh pull, not "already exists" (exit 4).
    env.ok(&strs(&fresh));
    assert_eq!(env.list(), ["bb"]);
    assert_fsck_clean(&env.state().join("images/bb/rootfs.ext4"));
    env.assert_consistent();

    // `--force` over an existing image: the old image stays, record and rootfs.
    let old = env.json(&["image", "show", "bb", "--json"]);
    let rootfs = env.state().join("images/bb/rootfs.ext4");
    let old_rootfs = std::fs::read(&rootfs).unwrap();
    let (code, stderr) =
        pause_then_resume(&env, &strs(&pull(true)), "before-commit", || fill(&filler));
    assert_database_full(code, &stderr);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(env.list(), ["bb"]);
    let now = env.json(&["image", "show", "bb", "--json"]);
    assert_eq!(now["pull_id"], old["pull_id"], "the old record stays");
    assert_eq!(now, old);
    assert!(
        std::fs::read(&rootfs).unwrap() == old_rootfs,
        "the old rootfs stays, byte for byte"
    );
    assert_fsck_clean(&rootfs);
    env.assert_consistent();
}
