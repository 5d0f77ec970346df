//! The boot matrix: images of every kind of init, made by `banger image pull`
//! with a kernel imported by `banger kernel import`, boot Debian's cloud
//! kernel under `qemu -accel tcg`, and banger's guest side does its jobs.
//!
//! | flavor | image | PID 1 | network |
//! |---|---|---|---|
//! | `systemd` | debootstrap'd bookworm with systemd | systemd | online |
//! | `minbase` | debootstrap minbase, no init at all (like Docker Hub's debian) | banger-init | online |
//! | `busybox` | the README's `examples/busybox` (no init applet) | banger-init | offline |
//! | `sysvinit` | minbase + sysvinit-core | sysvinit | offline |
//! | `openrc` | minbase + sysvinit-core + openrc | sysvinit running OpenRC | offline |
//! | `busybox-init` | `examples/busybox` + `/sbin/init -> /bin/busybox` | busybox init | offline |
//!
//! The product, not the test, supplies the kernel's modules: the test adds
//! only `tests/data/boot-report.sh` and a hook that starts it (a unit, an
//! inittab line, rcS, or the image's OCI `Cmd` where banger's init runs the
//! workload). The report waits for the NIC's `ip=` address, for first boot to
//! end and (online) for sshd, prints `BOOT-REPORT:` lines, then asks the
//! agent over vsock loopback to power off. qemu exits 0 even when the kernel
//! panics, so each boot is judged by those lines and the kernel's
//! `reboot: Power down`. Online guests reach Debian's mirror through qemu's
//! NAT: first boot installs OpenSSH and the test reads sshd's banner through
//! a `hostfwd` port; offline ones (`restrict=on`) keep the first-boot marker.
//!
//! Needs root, debootstrap, qemu-system-x86_64 and GNU tar, and apt for the
//! kernel (`scripts/guest-kernel`); kernel and trees are cached in
//! `${BANGER_TEST_CACHE:-$HOME/.cache/banger-test}`.

mod support;

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use banger_testkit::skip::{is_root, system_tool};
use banger_testkit::{assert_fsck_clean, Skip};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The guest address, gateway and DNS server of qemu's user network.
const GUEST_IP: &str = "10.0.2.15";
const CMDLINE_IP: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0:banger-guest::off:10.0.2.3";
/// Where the report script goes in every guest.
const REPORT_PATH: &str = "usr/local/sbin/banger-boot-report";
const REPORT_SCRIPT: &str = include_str!("data/boot-report.sh");
/// qemu is killed (and the test fails) after this long; an online first
/// boot under TCG installs OpenSSH in about two minutes.
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the guest may take to power off once its report has ended.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(90);

/// The systemd flavor's hook: a unit ordered after banger's.
const REPORT_UNIT: &str = "\
[Unit]
Description=banger boot test report (test only)
After=banger-vsock-agent.service banger-network.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/banger-boot-report

[Install]
WantedBy=multi-user.target
";

/// One row of the matrix.
struct Flavor {
    name: &'static str,
    base: Base,
    online: bool,
    /// What `image show --json` must say under `guest.init`.
    init: &'static str,
    /// The file PID 1 runs (`/proc/1/exe`) in the booted guest.
    pid1: &'static str,
    /// How the report starts.
    hook: Hook,
    /// first-boot.sh's exit status: 0 installed, 1 failed (offline), 2 no
    /// package manager.
    first_boot_status: &'static str,
}

enum Base {
    /// `scripts/debootstrap-tree FLAVOR`.
    Debootstrap(&'static str),
    /// `examples/busybox`'s layer.
    Busybox,
}

enum Hook {
    /// A systemd unit enabled in multi-user.target.
    SystemdUnit,
    /// The image's OCI `Cmd`, which banger's init runs as the workload.
    Workload,
    /// A `once` line appended to the image's own `/etc/inittab`.
    Inittab,
    /// `/sbin/init -> /bin/busybox` and an `/etc/init.d/rcS` that mounts
    /// `/proc`, `/sys` and `/dev` and starts it.
    BusyboxRcs,
}

#[test]
fn boot_systemd() {
    boot_flavor(&Flavor {
        name: "systemd",
        base: Base::Debootstrap("systemd"),
        online: true,
        init: "systemd",
        pid1: "/usr/lib/systemd/systemd",
        hook: Hook::SystemdUnit,
        first_boot_status: "0",
    });
}

#[test]
fn boot_minbase_without_init() {
    boot_flavor(&Flavor {
        name: "minbase",
        base: Base::Debootstrap("minbase"),
        online: true,
        init: "banger",
        pid1: "/usr/local/sbin/banger-init",
        hook: Hook::Workload,
        first_boot_status: "0",
    });
}

#[test]
fn boot_busybox_example() {
    boot_flavor(&Flavor {
        name: "busybox",
        base: Base::Busybox,
        online: false,
        init: "banger",
        pid1: "/usr/local/sbin/banger-init",
        hook: Hook::Workload,
        first_boot_status: "2",
    });
}

#[test]
fn boot_sysvinit() {
    boot_flavor(&Flavor {
        name: "sysvinit",
        base: Base::Debootstrap("sysvinit"),
        online: false,
        init: "sysvinit",
        pid1: "/usr/sbin/init",
        hook: Hook::Inittab,
        first_boot_status: "1",
    });
}

#[test]
fn boot_openrc() {
    boot_flavor(&Flavor {
        name: "openrc",
        base: Base::Debootstrap("openrc"),
        online: false,
        init: "openrc",
        pid1: "/usr/sbin/init",
        hook: Hook::Inittab,
        first_boot_status: "1",
    });
}

#[test]
fn boot_busybox_init() {
    boot_flavor(&Flavor {
        name: "busybox-init",
        base: Base::Busybox,
        online: false,
        init: "busybox",
        pid1: "/bin/busybox",
        hook: Hook::BusyboxRcs,
        first_boot_status: "2",
    });
}

// ------------------------------------------------------------ set-up

/// A program on `PATH` (or in /usr/sbin, /sbin), if installed.
fn tool(name: &str) -> Option<PathBuf> {
    let path = system_tool(name);
    path.is_file().then_some(path)
}

/// Runs `cmd`, panicking with its output if it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a script that prints a path, exits 2 when it cannot work here.
fn cached_path(script: &str, args: &[&str]) -> Result<PathBuf, Skip> {
    let script = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| Skip(format!("cannot run {script}: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Ok(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        Some(2) => Err(Skip(stderr.trim().to_owned())),
        _ => panic!("{script} {args:?} failed ({}):\n{stderr}", output.status),
    }
}

/// The store every flavor pulls into, with Debian's cloud kernel imported
/// as `guest` (modules included) by `banger kernel import`.
struct Store {
    state: PathBuf,
    cache: PathBuf,
}

impl Store {
    fn banger(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_banger"));
        cmd.env("BANGER_STATE_DIR", &self.state)
            .env("BANGER_CACHE_DIR", &self.cache);
        cmd
    }
}

/// Imports the kernel once for all flavors; `Err` when the matrix cannot
/// run here.
fn store() -> Result<&'static Store, Skip> {
    static STORE: OnceLock<Result<Store, String>> = OnceLock::new();
    let result = STORE.get_or_init(|| {
        let missing: Vec<&str> = ["qemu-system-x86_64", "tar"]
            .into_iter()
            .filter(|t| tool(t).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!("boot matrix needs {}", missing.join(", ")));
        }
        if !is_root() {
            return Err("boot matrix needs root (debootstrap, tars of root-owned trees)".into());
        }
        let kernel = cached_path("guest-kernel", &[]).map_err(|s| s.0)?;
        let release = fs::read_to_string(kernel.join("release"))
            .expect("guest-kernel writes release")
            .trim()
            .to_owned();
        // One fixed place under target/, emptied by each run: a static's
        // TempDir is never dropped, so a fresh one per run would leave the
        // imported kernel (about 40 MB) behind every time.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot-store");
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("emptying {}: {e}", dir.display()),
        }
        fs::create_dir_all(&dir).expect("mkdir boot-store");
        let store = Store {
            state: dir.join("state"),
            cache: dir.join("cache"),
        };
        run(store
            .banger()
            .args(["kernel", "import", "guest", "--kernel"])
            .arg(kernel.join("vmlinuz"))
            .arg("--modules")
            .arg(kernel.join("lib/modules").join(&release)));
        eprintln!("boot: imported kernel {release} into {}", dir.display());
        Ok(store)
    });
    result.as_ref().map_err(|why| Skip(why.clone()))
}

// ------------------------------------------------------------ the image

/// Moves `file` into the layout's blob store; returns `(digest, size)`.
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let mut hasher = Sha256::new();
    let mut reader = fs::File::open(file).expect("open blob");
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).expect("read blob");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hex::encode(hasher.finalize());
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).expect("mkdir blobs");
    fs::rename(file, dir.join(&hex)).expect("move blob");
    (format!("sha256:{hex}"), size)
}

/// A layer descriptor and its diff_id.
struct Layer {
    descriptor: Value,
    diff_id: String,
}

/// Tars `dir` with GNU tar (numeric owners, PAX xattrs) into an
/// uncompressed layer blob.
fn tar_layer(layout: &Path, dir: &Path, extra: &[&str]) -> Layer {
    let tar_path = layout.join("layer.tar.tmp");
    run(Command::new("tar")
        .args([
            "--format=pax",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
        ])
        .args(extra)
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&tar_path)
        .arg("."));
    let (digest, size) = add_blob(layout, &tar_path);
    Layer {
        descriptor: json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": digest, "size": size}),
        diff_id: digest,
    }
}

/// `examples/busybox`'s one layer, copied into `layout` as it is.
fn busybox_layer(layout: &Path) -> Layer {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox");
    let blob = |digest: &str| {
        example
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read_json = |path: PathBuf| -> Value {
        serde_json::from_slice(&fs::read(&path).expect("read example")).expect("example json")
    };
    let index = read_json(example.join("index.json"));
    let manifest = read_json(blob(
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    let config = read_json(blob(manifest["config"]["digest"].as_str().expect("digest")));
    let descriptor = manifest["layers"][0].clone();
    let digest = descriptor["digest"].as_str().expect("digest");
    let dest = layout.join("blobs/sha256");
    fs::create_dir_all(&dest).expect("mkdir blobs");
    fs::copy(
        blob(digest),
        dest.join(digest.trim_start_matches("sha256:")),
    )
    .expect("copy");
    Layer {
        descriptor,
        diff_id: config["rootfs"]["diff_ids"][0]
            .as_str()
            .expect("diff_id")
            .to_owned(),
    }
}

/// Writes `path` under `root` (creating parents) with `mode`.
fn write_file(root: &Path, path: &str, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(path);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, bytes).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The test's own layer: the report script and the flavor's hook.
fn stage_overlay(stage: &Path, flavor: &Flavor, base_tree: Option<&Path>) {
    use std::os::unix::fs::PermissionsExt;
    write_file(stage, REPORT_PATH, REPORT_SCRIPT.as_bytes(), 0o755);
    match flavor.hook {
        Hook::SystemdUnit => {
            write_file(
                stage,
                "etc/systemd/system/banger-boot-report.service",
                REPORT_UNIT.as_bytes(),
                0o644,
            );
            let wants = stage.join("etc/systemd/system/multi-user.target.wants");
            fs::create_dir_all(&wants).expect("mkdir wants");
            std::os::unix::fs::symlink(
                "/etc/systemd/system/banger-boot-report.service",
                wants.join("banger-boot-report.service"),
            )
            .expect("symlink");
        }
        Hook::Workload => {}
        Hook::Inittab => {
            // The image's own inittab plus a line that runs once rc 2 is done.
            let tree = base_tree.expect("an inittab hook needs a Debian tree");
            let mut inittab = fs::read_to_string(tree.join("etc/inittab")).expect("inittab");
            inittab.push_str(&format!("bt:2345:once:/{REPORT_PATH}\n"));
            write_file(stage, "etc/inittab", inittab.as_bytes(), 0o644);
        }
        Hook::BusyboxRcs => {
            fs::create_dir_all(stage.join("sbin")).expect("mkdir sbin");
            std::os::unix::fs::symlink("/bin/busybox", stage.join("sbin/init")).expect("symlink");
            // What a minimal busybox system's rcS does first, then the report.
            write_file(
                stage,
                "etc/init.d/rcS",
                format!(
                    "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
                     mount -t devtmpfs devtmpfs /dev\n/{REPORT_PATH} &\n"
                )
                .as_bytes(),
                0o755,
            );
        }
    }
    // Every staged directory as a package would leave it.
    let mut stack = vec![stage.to_path_buf()];
    while let Some(dir) = stack.pop() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("file type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

/// Writes an OCI layout at `layout` (tag `boot`) of `layers` whose config
/// runs `cmd`.
fn build_layout(layout: &Path, layers: &[Layer], cmd: &[&str]) {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "WorkingDir": "/", "ExposedPorts": {"22/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let (config_digest, config_size) =
        support::oci::write_blob(layout, &serde_json::to_vec(&config).expect("json"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers.iter().map(|l| l.descriptor.clone()).collect::<Vec<_>>(),
    });
    let (digest, size) =
        support::oci::write_blob(layout, &serde_json::to_vec(&manifest).expect("json"));
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                       "size": size, "annotations": {"org.opencontainers.image.ref.name": "boot"}}]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
}

// ------------------------------------------------------------ the boot

/// What a boot printed.
struct Console {
    text: String,
    path: PathBuf,
    /// sshd's banner as the host read it through hostfwd.
    ssh_banner: Option<String>,
}

impl Console {
    /// The console's last lines, for failure messages.
    fn tail(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(100)..].join("\n")
    }

    /// The `BOOT-REPORT:` payloads.
    fn reports(&self) -> Vec<&str> {
        self.text
            .lines()
            .filter_map(|l| l.split_once("BOOT-REPORT: ").map(|(_, r)| r.trim_end()))
            .collect()
    }

    /// The first report starting with `prefix`, without the prefix.
    fn report(&self, prefix: &str) -> Option<&str> {
        self.reports()
            .into_iter()
            .find_map(|r| r.strip_prefix(prefix).map(str::trim))
    }

    /// Panics with the console tail and log path unless `ok`.
    fn check(&self, ok: bool, what: &str) {
        assert!(
            ok,
            "{what}\nconsole log: {}\n--- console tail ---\n{}",
            self.path.display(),
            self.tail()
        );
    }
}

/// A free TCP port on 127.0.0.1 for hostfwd.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// sshd's identification line, if something answers on `port` with one,
/// and the connection, which the caller keeps open until the guest has
/// seen it (sshd waits for the client's line for its LoginGraceTime).
fn ssh_banner(port: u16) -> Option<(String, TcpStream)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()?
        .to_owned();
    line.starts_with("SSH-2.0-").then_some((line, stream))
}

/// Boots `image` with `kernel`, returns the console once qemu exits; kills
/// qemu and fails after [`BOOT_TIMEOUT`], or [`POWEROFF_TIMEOUT`] after the
/// report ended.
fn boot(kernel: &Path, image: &Path, online: bool, log: &Path) -> Console {
    let qemu = tool("qemu-system-x86_64").expect("checked by store()");
    let append = format!(
        "root=/dev/nvme0n1 rootfstype=ext4 rw console=ttyS0 panic=-1 {CMDLINE_IP} \
         banger_test.online={}",
        u8::from(online)
    );
    let port = free_port();
    let mut netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22");
    if !online {
        netdev.push_str(",restrict=on");
    }
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "512"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .args(["-append", &append])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=none,id=d0", image.display()))
        .args(["-device", "nvme,drive=d0,serial=rootdisk"])
        .args(["-netdev", &netdev])
        .args(["-device", "virtio-net-pci,netdev=n0"]);
    let out = fs::File::create(log).expect("create console log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("start qemu");
    let started = Instant::now();
    let mut ssh = None;
    let mut ended_at = None;
    let failure = loop {
        if child.try_wait().expect("wait for qemu").is_some() {
            break None;
        }
        let text = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
        if online && ssh.is_none() && text.contains("BOOT-REPORT: sshd listening") {
            ssh = ssh_banner(port);
        }
        if ended_at.is_none() && text.contains("BOOT-REPORT: end") {
            ended_at = Some(Instant::now());
        }
        if started.elapsed() > BOOT_TIMEOUT {
            break Some(format!(
                "qemu did not finish within {BOOT_TIMEOUT:?}; killed"
            ));
        }
        if ended_at.is_some_and(|t| t.elapsed() > POWEROFF_TIMEOUT) {
            break Some(format!(
                "the guest did not power off within {POWEROFF_TIMEOUT:?} of its report; killed"
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if failure.is_some() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let console = Console {
        text: String::from_utf8_lossy(&fs::read(log).expect("read console log")).into_owned(),
        path: log.to_path_buf(),
        ssh_banner: ssh.map(|(banner, _)| banner),
    };
    eprintln!(
        "boot: qemu ran {:.1} s; console log {}",
        started.elapsed().as_secs_f64(),
        log.display()
    );
    if let Some(failure) = failure {
        console.check(false, &failure);
    }
    console
}

// ------------------------------------------------------------ one row

fn boot_flavor(flavor: &Flavor) {
    let started = Instant::now();
    let store = match store() {
        Ok(store) => store,
        Err(skip) => {
            skip.report();
            return;
        }
    };
    let base_tree = match flavor.base {
        Base::Debootstrap(variant) => match cached_path("debootstrap-tree", &[variant]) {
            Ok(tree) => Some(tree),
            Err(skip) => {
                skip.report();
                return;
            }
        },
        Base::Busybox => None,
    };
    let name = flavor.name;
    // Kept on failure (console log and image); removed once the row passes.
    let work = tempfile::Builder::new()
        .prefix(&format!("banger-boot-{name}-"))
        .tempdir()
        .expect("tempdir")
        .keep();
    let layout = work.join("layout");
    fs::create_dir(&layout).expect("mkdir layout");
    let stage = work.join("overlay");
    stage_overlay(&stage, flavor, base_tree.as_deref());
    let base = match &base_tree {
        Some(tree) => tar_layer(&layout, tree, &[]),
        None => busybox_layer(&layout),
    };
    let overlay = tar_layer(&layout, &stage, &["--owner=0", "--group=0"]);
    let cmd: Vec<&str> = match flavor.hook {
        Hook::Workload => vec!["/usr/local/sbin/banger-boot-report"],
        _ => vec!["/bin/sh"],
    };
    build_layout(&layout, &[base, overlay], &cmd);

    let pull = Instant::now();
    let output = store
        .banger()
        .args([
            "image",
            "pull",
            "--quiet",
            "--kernel-ref",
            "guest",
            "--name",
            name,
        ])
        .arg(format!("oci:{}:boot", layout.display()))
        .output()
        .expect("run banger");
    assert!(
        output.status.success(),
        "{name}: banger image pull failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "boot {name}: pulled in {:.1} s",
        pull.elapsed().as_secs_f64()
    );
    fs::remove_dir_all(&layout).expect("remove layout");
    let show: Value =
        serde_json::from_str(&run(store.banger().args(["image", "show", "--json", name])))
            .expect("image show --json");
    assert_eq!(show["guest"]["init"], flavor.init, "{name}: {show:#}");
    let rootfs = PathBuf::from(show["rootfs"].as_str().expect("rootfs path"));
    let vmlinux = PathBuf::from(show["vmlinux"].as_str().expect("the image has the kernel"));
    assert_fsck_clean(&rootfs);

    let console = boot(&vmlinux, &rootfs, flavor.online, &work.join("console.log"));
    for report in console.reports() {
        eprintln!("boot {name}: guest: {report}");
    }
    assert_report(&console, flavor);
    assert_fsck_clean(&rootfs);
    fs::remove_dir_all(&work).expect("remove work dir");
    run(store.banger().args(["image", "rm", name]));
    eprintln!(
        "boot {name}: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The assertions on what the guest reported.
fn assert_report(console: &Console, flavor: &Flavor) {
    let name = flavor.name;
    console.check(
        console.report("end").is_some(),
        &format!("{name}: the report never finished (no `BOOT-REPORT: end`)"),
    );
    console.check(
        console.report("pid1") == Some(flavor.pid1),
        &format!("{name}: PID 1 is not {}", flavor.pid1),
    );

    // The NIC, whatever it is called, holds ip='s address with the default route.
    let inets: Vec<&str> = console
        .reports()
        .into_iter()
        .filter_map(|r| r.strip_prefix("inet "))
        .collect();
    let nic = inets.iter().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] != "lo" && f[1] == GUEST_IP).then(|| (f[0], f[2]))
    });
    console.check(
        nic.is_some_and(|(_, mask)| mask == "255.255.255.0"),
        &format!("{name}: no interface other than lo has {GUEST_IP}/24: {inets:?}"),
    );
    let (dev, _) = nic.expect("checked");
    console.check(
        console.report("default-route") == Some(&format!("{dev} 0202000A")),
        &format!("{name}: no default route via 10.0.2.2 on {dev}"),
    );
    console.check(
        console.report("hostname") == Some("banger-guest"),
        &format!("{name}: hostname from ip= not set"),
    );
    console.check(
        console.report("resolv.conf") == Some("nameserver 10.0.2.3"),
        &format!("{name}: resolv.conf from ip= not written"),
    );

    // The agent answers over vsock loopback.
    let health = console.report("health").unwrap_or("(no report)");
    let parsed: Option<Value> = serde_json::from_str(health).ok();
    console.check(
        parsed
            .as_ref()
            .is_some_and(|h| h["status"] == "ok" && h["hostname"] == "banger-guest"),
        &format!("{name}: the agent's health answer over vsock loopback is wrong: {health}"),
    );

    // First boot ran and ended as the guest's network allows.
    console.check(
        console.report("first-boot-status") == Some(flavor.first_boot_status),
        &format!(
            "{name}: first boot did not end with status {}",
            flavor.first_boot_status
        ),
    );
    let marker = if flavor.first_boot_status == "0" {
        "absent"
    } else {
        "present"
    };
    console.check(
        console.report("marker") == Some(marker),
        &format!("{name}: the first-boot marker should be {marker}"),
    );
    if flavor.online {
        console.check(
            console.report("sshd").is_some_and(|s| s == "listening")
                && console.report("ssh-connection").is_some(),
            &format!("{name}: sshd never listened or the host never reached it"),
        );
        let banner = console.ssh_banner.as_deref().unwrap_or("(none)");
        console.check(
            banner.starts_with("SSH-2.0-OpenSSH"),
            &format!("{name}: sshd's banner through hostfwd: {banner}"),
        );
        eprintln!("boot {name}: sshd answered the host: {banner}");
    }

    // A clean power-off on the agent's request, not a panic.
    console.check(
        console
            .report("poweroff")
            .is_some_and(|a| a.contains("powering-off")),
        &format!("{name}: the agent did not accept the poweroff request"),
    );
    console.check(
        console.text.contains("reboot: Power down"),
        &format!("{name}: the guest did not power off cleanly"),
    );
    console.check(
        !console.text.contains("Kernel panic"),
        &format!("{name}: the kernel panicked"),
    );
    let _ = std::io::stderr().flush();
}
