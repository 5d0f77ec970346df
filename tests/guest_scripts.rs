//! Runs the guest scripts (`assets/first-boot.sh`, `assets/banger-network.sh`)
//! under `dash` and `busybox sh` against a fake root, with stub package
//! managers, `systemctl`, `ssh-keygen` and `ip` on a PATH of their own that
//! record every call. Also runs `shellcheck` on every script.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIRST_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/first-boot.sh");
const NETWORK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/banger-network.sh");
const SCRIPTS: [&str; 2] = [FIRST_BOOT, NETWORK];

/// External tools the scripts may use besides the stubs.
const TOOLS: [&str; 5] = ["rm", "mv", "cat", "sleep", "mkdir"];

/// A POSIX shell to run the scripts with: program and leading arguments.
#[derive(Clone, Copy, Debug)]
struct Shell(&'static str, &'static [&'static str]);

const SHELLS: [Shell; 2] = [Shell("dash", &[]), Shell("busybox", &["sh"])];

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// The shells installed here; a missing one is reported, not hidden.
fn shells() -> Vec<(Shell, PathBuf)> {
    let found: Vec<_> = SHELLS
        .iter()
        .filter_map(|shell| match find_program(shell.0) {
            Some(path) => Some((*shell, path)),
            None => {
                eprintln!(
                    "SKIPPING shell {}: not installed (apt-get install {})",
                    shell.0, shell.0
                );
                None
            }
        })
        .collect();
    assert!(!found.is_empty(), "neither dash nor busybox is installed");
    found
}

/// A fake root plus a PATH directory of stubs that log to a file.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    cmdline: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&bin).unwrap();
        for tool in TOOLS {
            let path = find_program(tool).unwrap_or_else(|| panic!("{tool} not installed"));
            std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
        }
        let log = dir.path().join("calls.log");
        let cmdline = dir.path().join("cmdline");
        Self {
            root,
            bin,
            log,
            cmdline,
            _dir: dir,
        }
    }

    /// Puts an executable shell script `name` on the PATH. `body` runs
    /// after the call has been logged; `$STUB_DIR/fail-NAME` makes it fail.
    fn stub_with(&self, name: &str, log_prefix: &str, body: &str) {
        let path = self.bin.join(name);
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"{log_prefix}${{0##*/}} $*\" >> \"$STUB_LOG\"\n\
             [ -e \"$STUB_DIR/fail-${{0##*/}}\" ] && exit 1\n{body}\nexit 0\n"
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn stub(&self, name: &str) {
        self.stub_with(name, "", "");
    }

    fn stubs(&self, names: &[&str]) {
        names.iter().for_each(|name| self.stub(name));
    }

    fn fail(&self, name: &str) {
        fs::write(self.bin.join(format!("fail-{name}")), "").unwrap();
    }

    fn unfail(&self, name: &str) {
        fs::remove_file(self.bin.join(format!("fail-{name}"))).unwrap();
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    fn exists(&self, path: &str) -> bool {
        self.root.join(path.trim_start_matches('/')).exists()
    }

    fn run(&self, shell: &(Shell, PathBuf), script: &str) -> Output {
        self.run_with(shell, script, &[])
    }

    /// [`Sandbox::run`] with extra environment variables.
    fn run_with(&self, shell: &(Shell, PathBuf), script: &str, env: &[(&str, &str)]) -> Output {
        Command::new(&shell.1)
            .args(shell.0 .1)
            .arg(script)
            .env_clear()
            .env("PATH", &self.bin)
            .env("BANGER_ROOT", &self.root)
            .env("BANGER_CMDLINE", &self.cmdline)
            .env("BANGER_NET_WAIT", "0")
            .env("STUB_LOG", &self.log)
            .env("STUB_DIR", &self.bin)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// The calls logged since the last time, with the fake root spelled ROOT.
    fn calls(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let _ = fs::remove_file(&self.log);
        let root = self.root.to_str().unwrap();
        text.lines()
            .map(|line| line.replace(root, "ROOT"))
            .collect()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- first boot

const MARKER: &str = "/var/lib/banger/first-boot-pending";

/// Everything first-boot.sh may call.
const FIRST_BOOT_STUBS: [&str; 9] = [
    "apk",
    "dnf",
    "yum",
    "microdnf",
    "pacman",
    "zypper",
    "ssh-keygen",
    "systemctl",
    "rc-service",
];

fn first_boot_sandbox(os_release: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.stubs(&FIRST_BOOT_STUBS);
    sandbox.stub("rc-update");
    // apt-get must see DEBIAN_FRONTEND=noninteractive in its environment.
    sandbox.stub_with("apt-get", "DEBIAN_FRONTEND=${DEBIAN_FRONTEND-unset} ", "");
    sandbox.write("/etc/os-release", os_release);
    sandbox.write(MARKER, "");
    sandbox
}

fn systemd_start(unit: &str) -> Vec<String> {
    vec![
        "ssh-keygen -A -f ROOT".to_owned(),
        format!("systemctl enable {unit}.service"),
        format!("systemctl start --no-block {unit}.service"),
    ]
}

fn expected_calls(family: &str) -> Vec<String> {
    let (install, unit): (&[&str], &str) = match family {
        "apt" => (
            &[
                "DEBIAN_FRONTEND=noninteractive apt-get -o APT::Update::Error-Mode=any update",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server",
            ],
            "ssh",
        ),
        "apk" => (&["apk add --no-cache openssh-server"], "sshd"),
        "dnf" => (&["dnf install -y openssh-server"], "sshd"),
        "pacman" => (&["pacman -Sy --noconfirm --needed openssh"], "sshd"),
        "zypper" => (&["zypper --non-interactive install openssh"], "sshd"),
        other => panic!("no family {other}"),
    };
    let mut calls: Vec<String> = install.iter().map(|s| s.to_string()).collect();
    calls.extend(systemd_start(unit));
    calls
}

/// Runs a successful first boot and checks the calls, the exit status and
/// that the marker is gone.
fn assert_first_boot(os_release: &str, family: &str) {
    for shell in shells() {
        let sandbox = first_boot_sandbox(os_release);
        let out = sandbox.run(&shell, FIRST_BOOT);
        let context = format!("{} with {os_release:?}: {}", shell.0 .0, stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{context}");
        assert_eq!(sandbox.calls(), expected_calls(family), "{context}");
        assert!(!sandbox.exists(MARKER), "marker kept: {context}");
    }
}

#[test]
fn first_boot_dispatches_on_id() {
    let table = [
        ("debian", "apt"),
        ("ubuntu", "apt"),
        ("kali", "apt"),
        ("raspbian", "apt"),
        ("linuxmint", "apt"),
        ("pop", "apt"),
        ("alpine", "apk"),
        ("fedora", "dnf"),
        ("rhel", "dnf"),
        ("centos", "dnf"),
        ("rocky", "dnf"),
        ("almalinux", "dnf"),
        ("arch", "pacman"),
        ("archlinux", "pacman"),
        ("manjaro", "pacman"),
        ("opensuse", "zypper"),
        ("opensuse-leap", "zypper"),
        ("opensuse-tumbleweed", "zypper"),
        ("suse", "zypper"),
        ("sles", "zypper"),
    ];
    for (id, family) in table {
        // Unquoted, double- and single-quoted values are all valid os-release.
        assert_first_boot(
            &format!("NAME=\"Some Linux\"\nID={id}\nVERSION_ID=1\n"),
            family,
        );
        assert_first_boot(&format!("ID=\"{id}\"\n"), family);
        assert_first_boot(&format!("ID='{id}'"), family);
    }
}

#[test]
fn first_boot_falls_back_to_each_id_like_word() {
    let table = [
        ("ID=neon\nID_LIKE=\"ubuntu debian\"\n", "apt"),
        ("ID=ol\nID_LIKE=\"fedora\"\n", "dnf"),
        ("ID=\"virtuozzo\"\nID_LIKE=\"rhel centos fedora\"\n", "dnf"),
        ("ID=endeavouros\nID_LIKE=arch\n", "pacman"),
        ("ID=postmarketos\nID_LIKE=alpine\n", "apk"),
        ("ID=mylinux\nID_LIKE=\"unknownbase suse\"\n", "zypper"),
        // ID wins over ID_LIKE.
        ("ID_LIKE=debian\nID=fedora\n", "dnf"),
    ];
    for (os_release, family) in table {
        assert_first_boot(os_release, family);
    }
}

#[test]
fn first_boot_reads_usr_lib_os_release_when_etc_has_none() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("");
        fs::remove_file(sandbox.root.join("etc/os-release")).unwrap();
        sandbox.write("/usr/lib/os-release", "ID=debian\n");
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sandbox.calls(), expected_calls("apt"));
        assert!(!sandbox.exists(MARKER));
    }
}

#[test]
fn first_boot_rejects_unknown_distributions_and_keeps_the_marker() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=nixos\nID_LIKE=\"\"\n");
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("banger-first-boot: unsupported distribution ID=nixos"),
            "{}",
            stderr(&out)
        );
        assert_eq!(sandbox.calls(), Vec::<String>::new());
        assert!(sandbox.exists(MARKER));

        fs::remove_file(sandbox.root.join("etc/os-release")).unwrap();
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("cannot identify the distribution"),
            "{}",
            stderr(&out)
        );
        assert!(sandbox.exists(MARKER));
    }
}

#[test]
fn a_failed_first_boot_keeps_the_marker_and_the_next_one_retries() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=fedora\n");
        for failing in ["dnf", "ssh-keygen", "systemctl"] {
            sandbox.fail(failing);
            let out = sandbox.run(&shell, FIRST_BOOT);
            assert_eq!(out.status.code(), Some(1), "{failing}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("will retry on next boot"),
                "{}",
                stderr(&out)
            );
            assert!(sandbox.exists(MARKER), "{failing}");
            let calls = sandbox.calls();
            // Nothing runs after the failing step.
            assert!(calls.last().unwrap().starts_with(failing), "{calls:?}");
            sandbox.unfail(failing);
        }
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sandbox.calls(), expected_calls("dnf"));
        assert!(!sandbox.exists(MARKER));

        // Without the marker the script does nothing.
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(sandbox.calls(), Vec::<String>::new());
    }
}

#[test]
fn a_failed_apt_update_stops_before_install() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=debian\n");
        sandbox.fail("apt-get");
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            sandbox.calls(),
            ["DEBIAN_FRONTEND=noninteractive apt-get -o APT::Update::Error-Mode=any update"]
        );
        assert!(sandbox.exists(MARKER));
    }
}

#[test]
fn dnf_falls_back_to_yum_then_microdnf() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=centos\n");
        fs::remove_file(sandbox.bin.join("dnf")).unwrap();
        assert_eq!(sandbox.run(&shell, FIRST_BOOT).status.code(), Some(0));
        assert_eq!(sandbox.calls()[0], "yum install -y openssh-server");

        sandbox.write(MARKER, "");
        fs::remove_file(sandbox.bin.join("yum")).unwrap();
        assert_eq!(sandbox.run(&shell, FIRST_BOOT).status.code(), Some(0));
        assert_eq!(sandbox.calls()[0], "microdnf install -y openssh-server");

        sandbox.write(MARKER, "");
        fs::remove_file(sandbox.bin.join("microdnf")).unwrap();
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("none of dnf, yum or microdnf"),
            "{}",
            stderr(&out)
        );
        assert_eq!(sandbox.calls(), Vec::<String>::new());
        assert!(sandbox.exists(MARKER));
    }
}

#[test]
fn openrc_is_used_without_systemctl_and_no_service_manager_fails() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=alpine\n");
        fs::remove_file(sandbox.bin.join("systemctl")).unwrap();
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls(),
            [
                "apk add --no-cache openssh-server",
                "ssh-keygen -A -f ROOT",
                "rc-update add sshd default",
                "rc-service sshd start",
            ]
        );
        assert!(!sandbox.exists(MARKER));

        sandbox.write(MARKER, "");
        fs::remove_file(sandbox.bin.join("rc-service")).unwrap();
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("no service manager"),
            "{}",
            stderr(&out)
        );
        assert!(sandbox.exists(MARKER));
    }
}

#[test]
fn an_installed_sshd_is_not_reinstalled() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=ubuntu\n");
        sandbox.write("/usr/sbin/sshd", "");
        let sshd = sandbox.root.join("usr/sbin/sshd");
        fs::set_permissions(sshd, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(sandbox.run(&shell, FIRST_BOOT).status.code(), Some(0));
        assert_eq!(sandbox.calls(), systemd_start("ssh"));
        assert!(!sandbox.exists(MARKER));
    }
}

#[test]
fn under_banger_init_no_service_manager_is_used() {
    for shell in shells() {
        for os_release in ["ID=debian\n", "ID=alpine\n"] {
            let sandbox = first_boot_sandbox(os_release);
            sandbox.stub("rc-update");
            let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT", "1")]);
            let context = format!("{} {os_release:?}: {}", shell.0 .0, stderr(&out));
            assert_eq!(out.status.code(), Some(0), "{context}");
            let calls = sandbox.calls();
            // The install, then only the host keys: no systemctl, no rc-*.
            assert_eq!(calls.last().unwrap(), "ssh-keygen -A -f ROOT", "{context}");
            assert!(
                !calls
                    .iter()
                    .any(|c| c.starts_with("systemctl") || c.starts_with("rc-")),
                "{calls:?}"
            );
            assert!(stderr(&out).contains("banger-init is PID 1"), "{context}");
            assert!(!sandbox.exists(MARKER), "{context}");
        }
    }
}

/// first-boot.sh as banger's sysvinit, OpenRC and busybox services run it
/// (`BANGER_INIT_SYSTEM`): each enables and starts sshd its own way.
#[test]
fn first_boot_starts_sshd_the_way_each_init_system_does() {
    let apt = [
        "DEBIAN_FRONTEND=noninteractive apt-get -o APT::Update::Error-Mode=any update",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server",
        "ssh-keygen -A -f ROOT",
    ];
    for shell in shells() {
        // sysvinit: update-rc.d, then service (not invoke-rc.d, which obeys
        // a policy-rc.d). systemctl may be installed and is not used.
        let sandbox = first_boot_sandbox("ID=debian\n");
        sandbox.stubs(&["update-rc.d", "service"]);
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "sysvinit")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut want: Vec<String> = apt.iter().map(|s| s.to_string()).collect();
        want.extend([
            "update-rc.d ssh defaults".into(),
            "service ssh start".into(),
        ]);
        assert_eq!(sandbox.calls(), want);
        assert!(!sandbox.exists(MARKER));

        // sysvinit without "service": the script itself.
        let sandbox = first_boot_sandbox("ID=debian\n");
        sandbox.stub("update-rc.d");
        sandbox.write(
            "/etc/init.d/ssh",
            "#!/bin/sh\nprintf '%s\\n' \"init.d/ssh $*\" >> \"$STUB_LOG\"\n",
        );
        let script = sandbox.root.join("etc/init.d/ssh");
        fs::set_permissions(script, fs::Permissions::from_mode(0o755)).unwrap();
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "sysvinit")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls()[3..],
            ["update-rc.d ssh defaults", "init.d/ssh start"]
        );

        // OpenRC, from inside banger-first-boot's start(): --nodeps.
        let sandbox = first_boot_sandbox("ID=alpine\n");
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "openrc")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls(),
            [
                "apk add --no-cache openssh-server",
                "ssh-keygen -A -f ROOT",
                "rc-update add sshd default",
                "rc-service --nodeps sshd start",
            ]
        );

        // busybox with banger's inittab: sshd is left to the respawn line,
        // which starts it once the marker is gone.
        let sandbox = first_boot_sandbox("ID=alpine\n");
        sandbox.stub("sshd");
        sandbox.write(
            "/etc/inittab",
            "::sysinit:/etc/init.d/rcS\n::respawn:/usr/local/lib/banger/busybox/banger-sshd\n",
        );
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "busybox")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls(),
            ["apk add --no-cache openssh-server", "ssh-keygen -A -f ROOT"]
        );
        assert!(
            stderr(&out).contains("started by /etc/inittab"),
            "{}",
            stderr(&out)
        );
        assert!(!sandbox.exists(MARKER));

        // busybox without that line (first boot run by hand): sshd now.
        let sandbox = first_boot_sandbox("ID=alpine\n");
        sandbox.stub("sshd");
        sandbox.write("/etc/inittab", "::sysinit:/etc/init.d/rcS\n");
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "busybox")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sandbox.calls().last().map(String::as_str), Some("sshd "));
        assert!(sandbox.root.join("run/sshd").is_dir());
        sandbox.fail("sshd");
        sandbox.write(MARKER, "");
        let out = sandbox.run_with(&shell, FIRST_BOOT, &[("BANGER_INIT_SYSTEM", "busybox")]);
        assert_eq!(out.status.code(), Some(1), "a failed sshd keeps the marker");
        assert!(sandbox.exists(MARKER));
    }
}

/// Without BANGER_INIT_SYSTEM and with neither systemctl nor rc-service, a
/// Debian with sysv-rc (update-rc.d) is handled too.
#[test]
fn first_boot_falls_back_to_update_rc_d() {
    for shell in shells() {
        let sandbox = first_boot_sandbox("ID=debian\n");
        fs::remove_file(sandbox.bin.join("systemctl")).unwrap();
        fs::remove_file(sandbox.bin.join("rc-service")).unwrap();
        sandbox.stubs(&["update-rc.d", "service"]);
        let out = sandbox.run(&shell, FIRST_BOOT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let calls = sandbox.calls();
        assert_eq!(
            calls[calls.len() - 2..],
            ["update-rc.d ssh defaults", "service ssh start"]
        );
    }
}

// ------------------------------------------------------------------- network

/// A fake `ip`: logs, answers `addr show` from a state file that `addr add`
/// appends to, like the kernel would.
const IP_STUB: &str = r#"state=$STUB_DIR/ip-state
case "$*" in
    "-o addr show dev "*)
        [ -f "$state" ] && while IFS= read -r line; do printf '%s\n' "$line"; done < "$state"
        ;;
    "addr add "*)
        printf '2: %s    inet %s scope global %s\\       valid_lft forever\n' "$5" "$3" "$5" >> "$state"
        ;;
esac"#;

fn network_sandbox(cmdline: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.stub_with("ip", "", IP_STUB);
    for nic in ["lo", "ens3", "ens4"] {
        fs::create_dir_all(sandbox.root.join("sys/class/net").join(nic)).unwrap();
    }
    sandbox.write("/proc/sys/kernel/hostname", "localhost\n");
    fs::create_dir_all(sandbox.root.join("etc")).unwrap();
    fs::write(&sandbox.cmdline, format!("{cmdline}\n")).unwrap();
    sandbox
}

fn configure(dev: &str, cidr: &str, gateway: Option<&str>) -> Vec<String> {
    let mut calls = vec![
        format!("ip -o addr show dev {dev}"),
        format!("ip link set dev {dev} up"),
        format!("ip addr add {cidr} dev {dev}"),
    ];
    if let Some(gw) = gateway {
        calls.push(format!("ip route replace default via {gw} dev {dev}"));
    }
    calls
}

const FULL: &str =
    "console=ttyS0 ip=172.16.0.2::172.16.0.1:255.255.255.0:vm1:ens4:off:1.1.1.1:8.8.8.8 quiet";
const RESOLV: &str = "# Written by banger-network from the kernel command line (ip=).\n\
                      nameserver 1.1.1.1\nnameserver 8.8.8.8\n";

#[test]
fn network_configures_the_interface_hostname_and_resolv_conf_idempotently() {
    for shell in shells() {
        let sandbox = network_sandbox(FULL);
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls(),
            configure("ens4", "172.16.0.2/24", Some("172.16.0.1"))
        );
        assert_eq!(sandbox.read("/etc/resolv.conf").as_deref(), Some(RESOLV));
        assert_eq!(
            sandbox.read("/proc/sys/kernel/hostname").as_deref(),
            Some("vm1\n")
        );
        let inode = fs::metadata(sandbox.root.join("etc/resolv.conf"))
            .unwrap()
            .ino();

        // Second run: the address is there, nothing is changed or rewritten.
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sandbox.calls(), ["ip -o addr show dev ens4"]);
        assert!(
            stderr(&out).contains("already has 172.16.0.2"),
            "{}",
            stderr(&out)
        );
        assert_eq!(sandbox.read("/etc/resolv.conf").as_deref(), Some(RESOLV));
        let again = fs::metadata(sandbox.root.join("etc/resolv.conf"))
            .unwrap()
            .ino();
        assert_eq!(inode, again, "resolv.conf was rewritten");
        let leftovers: Vec<_> = fs::read_dir(sandbox.root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["resolv.conf"]);
    }
}

#[test]
fn network_is_a_no_op_when_the_kernel_configured_the_interface() {
    for shell in shells() {
        let sandbox = network_sandbox(FULL);
        fs::write(
            sandbox.bin.join("ip-state"),
            "2: ens4    inet 172.16.0.2/24 brd 172.16.0.255 scope global ens4\\       valid_lft forever\n",
        )
        .unwrap();
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sandbox.calls(), ["ip -o addr show dev ens4"]);
        // The kernel does not write resolv.conf; the script still does.
        assert_eq!(sandbox.read("/etc/resolv.conf").as_deref(), Some(RESOLV));

        // Another address that merely starts with ours does not count.
        let sandbox = network_sandbox(FULL);
        fs::write(
            sandbox.bin.join("ip-state"),
            "2: ens4    inet 172.16.0.20/24 scope global ens4\\       valid_lft forever\n",
        )
        .unwrap();
        assert_eq!(sandbox.run(&shell, NETWORK).status.code(), Some(0));
        assert_eq!(
            sandbox.calls(),
            configure("ens4", "172.16.0.2/24", Some("172.16.0.1"))
        );
    }
}

/// The stub answers `ip -o addr show` in the format the real tools use; check
/// that against iproute2 and busybox on this machine's loopback device.
#[test]
fn real_ip_tools_print_addresses_the_way_the_script_matches_them() {
    let tools: [(&str, &[&str]); 2] = [("ip", &[]), ("busybox", &["ip"])];
    for (program, prefix) in tools {
        let Some(path) = find_program(program) else {
            eprintln!("SKIPPING {program}: not installed");
            continue;
        };
        let out = Command::new(path)
            .args(prefix)
            .args(["-o", "addr", "show", "dev", "lo"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("127.0.0.1") {
            eprintln!("SKIPPING {program}: lo has no 127.0.0.1 here: {text:?}");
            continue;
        }
        assert!(text.contains(" inet 127.0.0.1/8 "), "{program}: {text:?}");
    }
}

#[test]
fn network_picks_the_first_interface_other_than_lo() {
    for shell in shells() {
        // No dns: an existing resolv.conf is left alone.
        let sandbox = network_sandbox("ip=10.1.2.3::10.1.2.1:255.255.0.0::::");
        sandbox.write("/etc/resolv.conf", "nameserver 9.9.9.9\n");
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            sandbox.calls(),
            configure("ens3", "10.1.2.3/16", Some("10.1.2.1"))
        );
        assert_eq!(
            sandbox.read("/etc/resolv.conf").as_deref(),
            Some("nameserver 9.9.9.9\n")
        );
        assert_eq!(
            sandbox.read("/proc/sys/kernel/hostname").as_deref(),
            Some("localhost\n")
        );
    }
}

#[test]
fn network_netmasks_and_gateways() {
    let table = [
        (
            "ip=192.168.7.9:::255.255.255.252::ens3:off",
            "192.168.7.9/30",
        ),
        ("ip=10.0.0.9:::255.0.0.0::ens3:none", "10.0.0.9/8"),
        ("ip=10.0.0.9:::0.0.0.0::ens3", "10.0.0.9/0"),
        ("ip=10.0.0.9:::255.255.255.255::ens3", "10.0.0.9/32"),
        // Empty netmask: the classful default, as the kernel uses.
        ("ip=10.0.0.9:::::ens3:off", "10.0.0.9/8"),
        ("ip=172.20.0.9:::::ens3:off", "172.20.0.9/16"),
        ("ip=192.168.1.5:::::ens3:off", "192.168.1.5/24"),
        // The last ip= wins.
        (
            "ip=1.2.3.4:::::ens4 ip=192.168.1.5:::::ens3",
            "192.168.1.5/24",
        ),
    ];
    for shell in shells() {
        for (cmdline, cidr) in table {
            let sandbox = network_sandbox(cmdline);
            let out = sandbox.run(&shell, NETWORK);
            assert_eq!(out.status.code(), Some(0), "{cmdline}: {}", stderr(&out));
            assert_eq!(sandbox.calls(), configure("ens3", cidr, None), "{cmdline}");
            assert!(!sandbox.exists("/etc/resolv.conf"), "{cmdline}");
        }
    }
}

#[test]
fn network_leaves_dhcp_and_missing_ip_alone() {
    for shell in shells() {
        for cmdline in [
            "console=ttyS0 root=/dev/vda",
            "ip=dhcp",
            "ip=on",
            "ip=:::::ens3:dhcp",
            "ip=10.0.0.2::10.0.0.1:255.255.255.0::ens3:both",
        ] {
            let sandbox = network_sandbox(cmdline);
            let out = sandbox.run(&shell, NETWORK);
            assert_eq!(out.status.code(), Some(0), "{cmdline}: {}", stderr(&out));
            assert_eq!(sandbox.calls(), Vec::<String>::new(), "{cmdline}");
            assert!(!sandbox.exists("/etc/resolv.conf"), "{cmdline}");
        }
    }
}

#[test]
fn network_errors_exit_non_zero() {
    for shell in shells() {
        for (cmdline, message) in [
            ("ip=10.0.0.2:::255.0.255.0::ens3:off", "invalid netmask"),
            ("ip=10.0.0.2:::255.255.255.1::ens3:off", "invalid netmask"),
            ("ip=10.0.0.2:::255.255::ens3:off", "invalid netmask"),
            (
                "ip=::10.0.0.1:255.255.255.0::ens3:off",
                "no valid client address",
            ),
            ("ip=10.0.0.2:::255.255.255.0::eth0:off", "did not appear"),
        ] {
            let sandbox = network_sandbox(cmdline);
            let out = sandbox.run(&shell, NETWORK);
            assert_eq!(out.status.code(), Some(1), "{cmdline}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(message),
                "{cmdline}: {}",
                stderr(&out)
            );
            assert_eq!(sandbox.calls(), Vec::<String>::new(), "{cmdline}");
        }
        let sandbox = network_sandbox(FULL);
        sandbox.fail("ip");
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("configuring ens4 failed"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn network_picks_the_interface_by_the_name_udev_gives_it() {
    for shell in shells() {
        let sandbox = network_sandbox("ip=172.16.0.2::172.16.0.1:255.255.255.0:vm1::off");
        for nic in ["ens3", "ens4"] {
            fs::remove_dir(sandbox.root.join("sys/class/net").join(nic)).unwrap();
        }
        // The kernel's name, which udev is about to change.
        fs::create_dir(sandbox.root.join("sys/class/net/eth0")).unwrap();
        sandbox.stub_with(
            "udevadm",
            "",
            r#"[ -d "$BANGER_ROOT/sys/class/net/eth0" ] &&
                mv "$BANGER_ROOT/sys/class/net/eth0" "$BANGER_ROOT/sys/class/net/ens5""#,
        );
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut expected = vec!["udevadm settle --timeout=10".to_owned()];
        expected.extend(configure("ens5", "172.16.0.2/24", Some("172.16.0.1")));
        assert_eq!(sandbox.calls(), expected);
    }
}

/// A sandbox for `FULL` without `ip` (debian and ubuntu container images
/// have no iproute2), with a `systemctl` stub and, if `networkd`, stubs for
/// systemd-networkd and its wait-online helper in the fake root.
fn networkd_sandbox(networkd: bool) -> Sandbox {
    let sandbox = network_sandbox(FULL);
    fs::remove_file(sandbox.bin.join("ip")).unwrap();
    sandbox.stub("systemctl");
    if networkd {
        let dir = sandbox.root.join("lib/systemd");
        fs::create_dir_all(&dir).unwrap();
        for name in ["systemd-networkd", "systemd-networkd-wait-online"] {
            sandbox.stub(name);
            fs::rename(sandbox.bin.join(name), dir.join(name)).unwrap();
        }
    }
    sandbox
}

const NETWORKD_FILE: &str = "# Written by banger-network from the kernel command line (ip=).\n\
    [Match]\nName=ens4\n\n[Network]\nAddress=172.16.0.2/24\nGateway=172.16.0.1\n\
    DHCP=no\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n";

#[test]
fn network_without_ip_hands_the_configuration_to_systemd_networkd() {
    for shell in shells() {
        let sandbox = networkd_sandbox(true);
        for _ in 0..2 {
            let out = sandbox.run(&shell, NETWORK);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(
                sandbox.calls(),
                [
                    "systemctl restart systemd-networkd.service",
                    "systemd-networkd-wait-online --interface=ens4:routable --timeout=0",
                ]
            );
            assert!(
                stderr(&out).contains(
                    "configured ens4 with 172.16.0.2/24 via 172.16.0.1 (systemd-networkd)"
                ),
                "{}",
                stderr(&out)
            );
            assert_eq!(
                sandbox
                    .read("/run/systemd/network/10-banger-ens4.network")
                    .as_deref(),
                Some(NETWORKD_FILE)
            );
            assert_eq!(sandbox.read("/etc/resolv.conf").as_deref(), Some(RESOLV));
            assert_eq!(
                sandbox.read("/proc/sys/kernel/hostname").as_deref(),
                Some("vm1\n")
            );
        }

        // networkd never brings the interface up: a failure, reported.
        sandbox.fail("systemd-networkd-wait-online");
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("did not bring up ens4"),
            "{}",
            stderr(&out)
        );

        // Neither ip nor networkd: nothing can configure the interface.
        let sandbox = networkd_sandbox(false);
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no ip command (iproute2 or busybox) and no systemd-networkd"),
            "{}",
            stderr(&out)
        );
        assert_eq!(sandbox.calls(), Vec::<String>::new());
    }
}

#[test]
fn network_replaces_a_resolv_conf_symlink() {
    for shell in shells() {
        let sandbox = network_sandbox(FULL);
        let link = sandbox.root.join("etc/resolv.conf");
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", &link).unwrap();
        let out = sandbox.run(&shell, NETWORK);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(sandbox.read("/etc/resolv.conf").as_deref(), Some(RESOLV));
    }
}

/// The script against a real kernel: inside a fresh network namespace
/// (`unshare -n`, needs root), with iproute2's and busybox's `ip`, configuring
/// `lo` twice. The second run must change nothing.
#[test]
fn network_configures_a_real_interface_in_a_network_namespace() {
    let Some(unshare) = find_program("unshare") else {
        eprintln!("SKIPPING: unshare not installed");
        return;
    };
    let probe = Command::new(&unshare).args(["-n", "true"]).status();
    if !matches!(probe, Ok(status) if status.success()) {
        eprintln!("SKIPPING: cannot create a network namespace (unshare -n needs root)");
        return;
    }
    let mut implementations = Vec::new();
    if let Some(ip) = find_program("ip") {
        implementations.push((
            "iproute2",
            format!("#!/bin/sh\nexec {} \"$@\"\n", ip.display()),
        ));
    }
    if let Some(busybox) = find_program("busybox") {
        implementations.push((
            "busybox",
            format!("#!/bin/sh\nexec {} ip \"$@\"\n", busybox.display()),
        ));
    }
    let Some(host_ip) = find_program("ip").or_else(|| find_program("busybox")) else {
        eprintln!("SKIPPING: no ip tool installed");
        return;
    };
    let show = if host_ip.ends_with("busybox") {
        "busybox ip"
    } else {
        "ip"
    };
    for shell in shells() {
        for (name, wrapper) in &implementations {
            let sandbox = network_sandbox("ip=10.9.0.2::10.9.0.1:255.255.255.0:vm:lo:off:1.1.1.1");
            let ip = sandbox.bin.join("ip");
            fs::remove_file(&ip).unwrap();
            fs::write(&ip, wrapper).unwrap();
            fs::set_permissions(&ip, fs::Permissions::from_mode(0o755)).unwrap();
            let run = format!(
                "{shell} {args} {NETWORK}; echo rc=$?; {shell} {args} {NETWORK}; echo rc=$?; \
                 {show} -o addr show dev lo; {show} route",
                shell = shell.1.display(),
                args = shell.0 .1.join(" "),
            );
            let out = Command::new(&unshare)
                .args(["-n", "/bin/sh", "-c", &run])
                .env_clear()
                .env(
                    "PATH",
                    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", sandbox.bin.display()),
                )
                .env("BANGER_ROOT", &sandbox.root)
                .env("BANGER_CMDLINE", &sandbox.cmdline)
                .env("BANGER_NET_WAIT", "0")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let context = format!("{} with {name}: {stdout}{}", shell.0 .0, stderr(&out));
            assert_eq!(stdout.matches("rc=0").count(), 2, "{context}");
            assert!(stdout.contains(" inet 10.9.0.2/24 "), "{context}");
            assert_eq!(stdout.matches(" inet 10.9.0.2/").count(), 1, "{context}");
            assert!(stdout.contains("default via 10.9.0.1 dev lo"), "{context}");
            assert!(
                stderr(&out).contains("lo already has 10.9.0.2"),
                "{context}"
            );
            assert!(sandbox
                .read("/etc/resolv.conf")
                .unwrap()
                .contains("nameserver 1.1.1.1\n"));
        }
    }
}

// ----------------------------------------------------------------- shellcheck

#[test]
fn shellcheck_finds_nothing() {
    let Some(shellcheck) = find_program("shellcheck") else {
        eprintln!("SKIPPING shellcheck: not installed (apt-get install shellcheck)");
        return;
    };
    for script in SCRIPTS {
        let out = Command::new(&shellcheck)
            .args(["--shell=sh", "--severity=style", "--external-sources"])
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {script}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
}
