//! Boot acceptance test: a real Debian bookworm image, converted by the
//! `banger` binary from an OCI layout, boots Debian's cloud kernel under
//! `qemu -accel tcg` and the injected guest agents do their jobs.
//!
//! The image is a debootstrap'd tree (layer 1) plus a layer with the kernel
//! modules the NIC and vsock need and a test-only unit,
//! `banger-boot-report.service`, that prints `BOOT-REPORT:` lines to the
//! console once the three banger units have run and then powers the guest
//! off. qemu exits 0 even when the kernel panics, so the test judges the
//! boot by those lines alone. The guest's user network is `restrict=on`:
//! first boot must fail to install OpenSSH and keep its marker for a retry.
//!
//! Needs root, debootstrap, qemu-system-x86_64, GNU tar, kmod (`modinfo`,
//! `depmod`) and apt (for the kernel, fetched by `scripts/guest-kernel`);
//! the kernel and the Debian tree are cached in
//! `${BANGER_TEST_CACHE:-$HOME/.cache/banger-test}` between runs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use banger_testkit::skip::{is_root, system_tool};
use banger_testkit::{assert_fsck_clean, Skip};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The guest address, gateway and DNS server of qemu's user network.
const GUEST_IP: &str = "10.0.2.15";
const CMDLINE_IP: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0:banger-guest::off:10.0.2.3";
/// The guest's vsock CID when the host can give it a vhost-vsock device.
const GUEST_CID: u32 = 3;
/// qemu is killed (and the test fails) after this long.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Modules the guest needs beyond the kernel's built-ins: the virtio PCI
/// transport (a module in the cloud kernel), the NIC, vsock with its virtio
/// transport, and vsock loopback so the agent can be asked for its health
/// from inside the guest when the host has no vhost-vsock. Their
/// dependencies are added from `modinfo`.
const GUEST_MODULES: [&str; 5] = [
    "virtio_pci",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
];

/// The test-only unit: runs after the banger units, reports, powers off.
const REPORT_UNIT: &str = "\
[Unit]
Description=banger boot test report (test only)
Wants=banger-vsock-agent.service banger-network.service banger-first-boot.service
After=banger-vsock-agent.service banger-network.service banger-first-boot.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/banger-boot-report

[Install]
WantedBy=multi-user.target
";

/// Prints what the test asserts on, as `BOOT-REPORT:` lines on the console.
/// Addresses are read with ioctls from perl (perl-base is in every Debian)
/// because a minbase tree has no iproute2.
const REPORT_SCRIPT: &str = r#"#!/bin/sh
exec >/dev/console 2>&1
r() { printf 'BOOT-REPORT: %s\n' "$*"; }
r begin
# The agent is Type=simple: give it a moment to bind or to fail.
i=0
while [ $i -lt 10 ] && ! journalctl -q -u banger-vsock-agent.service | grep -q 'listening on\|unavailable'; do
    sleep 1; i=$((i + 1))
done
for path in /sys/class/net/*; do
    dev=${path##*/}
    perl -e '
        socket(my $s, 2, 2, 0) or die "socket: $!";
        my $dev = $ARGV[0];
        my ($addr, $mask) = ("none", "none");
        my $buf = pack("a16 x16", $dev);
        $addr = join(".", unpack("x20 C4", $buf)) if ioctl($s, 0x8915, $buf);
        $buf = pack("a16 x16", $dev);
        $mask = join(".", unpack("x20 C4", $buf)) if ioctl($s, 0x891b, $buf);
        print "BOOT-REPORT: inet $dev $addr $mask\n";
    ' "$dev"
done
while read -r dev dest gw _; do
    [ "$dest" = 00000000 ] && r "default-route $dev $gw"
done < /proc/net/route
r "hostname $(cat /proc/sys/kernel/hostname)"
r "resolv.conf $(grep nameserver /etc/resolv.conf | tr '\n' ' ')"
for unit in banger-network banger-vsock-agent banger-first-boot; do
    r "is-active $unit $(systemctl is-active $unit.service)"
    r "result $unit $(systemctl show -P Result $unit.service) $(systemctl show -P SubState $unit.service)"
    systemctl status --no-pager --lines=0 $unit.service | sed "s/^/BOOT-STATUS $unit: /"
    journalctl -q --no-pager -o cat -u $unit.service | tail -n 20 | sed "s/^/BOOT-LOG $unit: /"
done
if [ -e /var/lib/banger/first-boot-pending ]; then r "marker present"; else r "marker absent"; fi
if [ -e /dev/vsock ]; then r "dev-vsock present"; else r "dev-vsock absent"; fi
r "modules $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
# Ask the agent for its health over vsock loopback (CID 1, port 52).
perl -e '
    $SIG{ALRM} = sub { print "BOOT-REPORT: health timeout\n"; exit 0 };
    alarm 5;
    socket(my $s, 40, 1, 0) or do { print "BOOT-REPORT: health no-socket $!\n"; exit 0 };
    connect($s, pack("S S L L x4", 40, 0, 52, 1)) or do { print "BOOT-REPORT: health no-connect $!\n"; exit 0 };
    syswrite($s, "health\n");
    my $line = <$s>;
    $line = "(nothing)\n" unless defined $line;
    print "BOOT-REPORT: health $line";
'
r end
systemctl poweroff --no-block
"#;

/// A program on `PATH` (or in /usr/sbin, /sbin), if installed.
fn tool(name: &str) -> Option<PathBuf> {
    let path = system_tool(name);
    path.is_file().then_some(path)
}

/// Runs `cmd`, panicking with its output if it fails.
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

/// `GUEST_MODULES` and everything they depend on: module name -> `.ko`
/// path relative to `lib/modules/RELEASE`.
fn module_closure(modules_dir: &Path, modinfo: &Path) -> BTreeMap<String, PathBuf> {
    let mut by_name = BTreeMap::new();
    let mut stack = vec![modules_dir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("read_dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(module) = name.strip_suffix(".ko") {
                    let relative = path.strip_prefix(modules_dir).expect("under modules_dir");
                    by_name.insert(module.replace('-', "_"), relative.to_path_buf());
                }
            }
        }
    }
    let builtin = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .filter_map(|l| l.rsplit('/').next()?.strip_suffix(".ko"))
        .map(|m| m.replace('-', "_"))
        .collect();

    let mut needed = BTreeMap::new();
    let mut todo: Vec<String> = GUEST_MODULES.iter().map(|m| m.to_string()).collect();
    while let Some(module) = todo.pop() {
        if needed.contains_key(&module) || builtin.contains(&module) {
            continue;
        }
        let relative = by_name
            .get(&module)
            .unwrap_or_else(|| panic!("the guest kernel has no module {module}"));
        let depends = run(Command::new(modinfo)
            .args(["-F", "depends"])
            .arg(modules_dir.join(relative)));
        todo.extend(
            depends
                .trim()
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace('-', "_")),
        );
        needed.insert(module, relative.clone());
    }
    needed
}

/// Writes `text` to `path` (creating parents) with `mode`.
fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Stages layer 2: the modules with their depmod indexes under
/// `usr/lib/modules/RELEASE` (Debian's `/lib` is a symlink to `usr/lib`, and
/// a layer entry for `lib/` would replace it), the report unit and script.
/// Returns the module names staged.
fn stage_overlay(stage: &Path, kernel: &Path, release: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let (Some(modinfo), Some(depmod)) = (tool("modinfo"), tool("depmod")) else {
        panic!("modinfo/depmod missing (checked by the caller)");
    };
    let source = kernel.join("lib/modules").join(release);
    let modules_root = stage.join("usr/lib/modules").join(release);
    let closure = module_closure(&source, &modinfo);
    for relative in closure.values() {
        let dest = modules_root.join(relative);
        fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        fs::copy(source.join(relative), &dest).expect("copy module");
    }
    for index in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        fs::copy(source.join(index), modules_root.join(index)).expect("copy index");
    }
    // depmod looks in BASE/lib/modules.
    run(Command::new(&depmod)
        .arg("-b")
        .arg(stage.join("usr"))
        .arg(release));
    assert!(
        modules_root.join("modules.dep").is_file(),
        "depmod wrote no modules.dep"
    );

    write_file(
        &stage.join("etc/systemd/system/banger-boot-report.service"),
        REPORT_UNIT,
        0o644,
    );
    let wants = stage.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).expect("mkdir wants");
    std::os::unix::fs::symlink(
        "/etc/systemd/system/banger-boot-report.service",
        wants.join("banger-boot-report.service"),
    )
    .expect("symlink");
    write_file(
        &stage.join("usr/local/sbin/banger-boot-report"),
        REPORT_SCRIPT,
        0o755,
    );
    // Test-only: vsock loopback lets the report query the agent in the guest.
    write_file(
        &stage.join("etc/modules-load.d/boot-test-vsock-loopback.conf"),
        "vsock_loopback\n",
        0o644,
    );
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
    closure.into_keys().collect()
}

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

/// Tars `dir` (numeric owners, PAX xattrs) into an uncompressed layer blob.
fn add_tar_layer(layout: &Path, dir: &Path, extra: &[&str]) -> (String, u64) {
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
    add_blob(layout, &tar_path)
}

/// Writes an OCI layout at `layout` holding one image (tag `boot`) made of
/// uncompressed tar layers of `dirs`, in order.
fn build_layout(layout: &Path, layers: &[(String, u64)]) {
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.clone()).collect();
    let config = support::oci::config_json("linux/amd64", &diff_ids);
    let (config_digest, config_size) = support::oci::write_blob(layout, &config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|(digest, size)| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layer_descs,
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

/// Whether the host can give the guest a vsock device: loads vhost_vsock
/// if needed and checks for `/dev/vhost-vsock`.
fn host_has_vhost_vsock() -> bool {
    if !Path::new("/dev/vhost-vsock").exists() {
        if let Some(modprobe) = tool("modprobe") {
            let _ = Command::new(modprobe)
                .arg("vhost_vsock")
                .stderr(Stdio::null())
                .status();
        }
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vhost-vsock")
        .is_ok()
}

/// What a boot printed.
struct Console {
    text: String,
    path: PathBuf,
}

impl Console {
    /// The console's last lines, for failure messages.
    fn tail(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
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

    /// Lines of the unit's journal the report printed.
    fn unit_log(&self, unit: &str) -> Vec<&str> {
        let tag = format!("BOOT-LOG {unit}: ");
        self.text
            .lines()
            .filter_map(|l| l.split_once(tag.as_str()).map(|(_, r)| r.trim_end()))
            .collect()
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

/// Boots `image` with `kernel`, returns the console once qemu exits; kills
/// qemu and fails after [`BOOT_TIMEOUT`].
fn boot(qemu: &Path, vmlinuz: &Path, image: &Path, vsock: bool, log: &Path) -> Console {
    let append = format!(
        "root=/dev/nvme0n1 rootfstype=ext4 rw console=ttyS0 panic=-1 {CMDLINE_IP} \
         systemd.unit=multi-user.target"
    );
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "512"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(vmlinuz)
        .args(["-append", &append])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=none,id=d0", image.display()))
        .args(["-device", "nvme,drive=d0,serial=rootdisk"])
        .args(["-netdev", "user,id=n0,restrict=on"])
        .args(["-device", "virtio-net-pci,netdev=n0"]);
    if vsock {
        cmd.args(["-device", &format!("vhost-vsock-pci,guest-cid={GUEST_CID}")]);
    }
    let out = fs::File::create(log).expect("create console log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", qemu.display()));
    let started = Instant::now();
    let timed_out = loop {
        if child.try_wait().expect("wait for qemu").is_some() {
            break false;
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let console = Console {
        text: String::from_utf8_lossy(&fs::read(log).expect("read console log")).into_owned(),
        path: log.to_path_buf(),
    };
    eprintln!(
        "boot: qemu ran {:.1} s; console log {}",
        started.elapsed().as_secs_f64(),
        log.display()
    );
    console.check(
        !timed_out,
        &format!("qemu did not finish within {BOOT_TIMEOUT:?}; killed"),
    );
    console
}

#[test]
fn debian_image_boots_and_the_guest_agents_run() {
    let started = Instant::now();
    let missing: Vec<&str> = ["qemu-system-x86_64", "tar", "modinfo", "depmod"]
        .into_iter()
        .filter(|t| tool(t).is_none())
        .collect();
    if !missing.is_empty() {
        Skip(format!("boot test needs {}", missing.join(", "))).report();
        return;
    }
    if !is_root() {
        Skip("boot test needs root (it tars a debootstrap tree)".into()).report();
        return;
    }
    let Some(tree) = banger_testkit::debootstrap::debootstrap_tree() else {
        return;
    };
    let (kernel, release) = match guest_kernel() {
        Ok(k) => k,
        Err(skip) => {
            skip.report();
            return;
        }
    };
    eprintln!(
        "boot: kernel {release}, tree {} ready after {:.1} s",
        tree.display(),
        started.elapsed().as_secs_f64()
    );

    // Kept on failure (console log and image); removed once the test passes.
    let work = tempfile::Builder::new()
        .prefix("banger-boot-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let layout = work.join("layout");
    fs::create_dir(&layout).expect("mkdir layout");
    let stage = work.join("overlay");
    let modules = stage_overlay(&stage, &kernel, &release);
    eprintln!("boot: guest modules {}", modules.join(" "));
    let base = add_tar_layer(&layout, &tree, &[]);
    let overlay = add_tar_layer(&layout, &stage, &["--owner=0", "--group=0"]);
    build_layout(&layout, &[base, overlay]);

    let image = work.join("rootfs.ext4");
    let convert = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_banger"))
        .arg("rootfs")
        .arg(format!("oci:{}:boot", layout.display()))
        .arg("-o")
        .arg(&image)
        .env("BANGER_CACHE_DIR", work.join("cache"))
        .output()
        .expect("run banger");
    assert!(
        output.status.success(),
        "banger rootfs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "boot: banger rootfs took {:.1} s: {}",
        convert.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    assert_fsck_clean(&image);
    fs::remove_dir_all(&layout).expect("remove layout");

    let vsock = host_has_vhost_vsock();
    eprintln!(
        "boot: {}",
        if vsock {
            "host has /dev/vhost-vsock: guest gets vhost-vsock-pci (CID 3)"
        } else {
            "host has no /dev/vhost-vsock: guest boots without a vsock device (vsock loopback only)"
        }
    );
    let qemu = tool("qemu-system-x86_64").expect("checked above");
    let log = work.join("console.log");
    let console = boot(&qemu, &kernel.join("vmlinuz"), &image, vsock, &log);
    for report in console.reports() {
        eprintln!("boot: guest: {report}");
    }
    assert_boot_report(&console, vsock);
    assert_fsck_clean(&image);
    fs::remove_dir_all(&work).expect("remove work dir");
    eprintln!("boot: passed in {:.1} s", started.elapsed().as_secs_f64());
}

/// The assertions on what the guest reported.
fn assert_boot_report(console: &Console, vsock: bool) {
    console.check(
        console.report("end").is_some(),
        "the report unit never finished (no `BOOT-REPORT: end`)",
    );

    // banger-network configured ip= on the NIC, whatever it is called.
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
        &format!("no interface other than lo has {GUEST_IP}/24: {inets:?}"),
    );
    let (dev, _) = nic.expect("checked");
    console.check(
        console.report("default-route") == Some(&format!("{dev} 0202000A")),
        "no default route via 10.0.2.2",
    );
    console.check(
        console.report("hostname") == Some("banger-guest"),
        "hostname from ip= not set",
    );
    console.check(
        console.report("resolv.conf") == Some("nameserver 10.0.2.3"),
        "resolv.conf from ip= not written",
    );
    console.check(
        console.report("result banger-network") == Some("success exited"),
        "banger-network.service is not active (exited)",
    );
    let network_log = console.unit_log("banger-network");
    console.check(
        network_log
            .iter()
            .any(|l| l.contains(&format!("configured {dev} with {GUEST_IP}/24 via 10.0.2.2"))),
        &format!("banger-network did not log configuring {dev}: {network_log:?}"),
    );

    // The agent: active and answering over vsock (loopback in the guest).
    let agent_log = console.unit_log("banger-vsock-agent");
    let active = console.report("is-active banger-vsock-agent") == Some("active");
    if vsock || active {
        console.check(
            active
                && agent_log
                    .iter()
                    .any(|l| l.contains("listening on vsock port 52")),
            &format!("banger-vsock-agent.service is not listening: {agent_log:?}"),
        );
        let health = console.report("health").unwrap_or("(no report)");
        let parsed: Option<serde_json::Value> = serde_json::from_str(health).ok();
        console.check(
            parsed.as_ref().is_some_and(|h| {
                h["status"] == "ok"
                    && h["hostname"] == "banger-guest"
                    && h["first_boot_pending"] == true
            }),
            &format!("the agent's health answer over vsock loopback is wrong: {health}"),
        );
        eprintln!("boot: agent active; health over vsock loopback: {health}");
    } else {
        console.check(
            console.report("result banger-vsock-agent") == Some("exit-code failed")
                && agent_log
                    .iter()
                    .any(|l| l.contains("AF_VSOCK is unavailable")),
            &format!(
                "banger-vsock-agent failed for another reason than missing vsock: {agent_log:?}"
            ),
        );
        eprintln!("boot: agent failed only for lack of vsock (no device, no loopback)");
    }

    // First boot ran, tried apt-get without a network, and keeps its marker.
    let first_boot_log = console.unit_log("banger-first-boot");
    console.check(
        first_boot_log
            .iter()
            .any(|l| l.contains("distribution debian uses apt; installing OpenSSH"))
            && first_boot_log
                .iter()
                .any(|l| l.contains("installing OpenSSH with apt failed; will retry on next boot")),
        &format!("first boot did not try apt-get and fail: {first_boot_log:?}"),
    );
    console.check(
        console.report("result banger-first-boot") == Some("exit-code failed"),
        "banger-first-boot.service did not fail",
    );
    console.check(
        console.report("marker") == Some("present"),
        "the first-boot marker is gone",
    );

    // A clean power-off, not a panic.
    console.check(
        console.text.contains("reboot: Power down"),
        "the guest did not power off cleanly",
    );
    console.check(
        !console.text.contains("Kernel panic"),
        "the kernel panicked",
    );
    let _ = std::io::stderr().flush();
}
