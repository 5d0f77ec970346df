//! Steps 5 to 10: PID 1's main loop. It starts the vsock agent, the first
//! boot, sshd and the workload, restarts the services, reaps every orphan
//! and carries out the shutdown.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::accounts::{parse_group, parse_passwd};
use super::cmdline::WorkloadExit;
use super::config::InitConfig;
use super::mounts;
use super::services::Service;
use super::shutdown::{Action, Shutdown, GRACE};
use super::signals::{self, Signals};
use super::spawn::{self, Reaped, Spec, Streams};
use super::workload::{self, DEFAULT_PATH};
use crate::say;

/// The agent banger installs.
pub const AGENT_PATH: &str = "/usr/local/bin/banger-vsock-agent";
/// banger's first-boot script, run with `/bin/sh`.
pub const FIRST_BOOT_SCRIPT: &str = "/usr/local/lib/banger/first-boot.sh";
/// The shell the first-boot script needs.
pub const SHELL: &str = "/bin/sh";
/// OpenSSH's server.
pub const SSHD_PATH: &str = "/usr/sbin/sshd";
/// The agent's exit status when the guest has no vsock: not restarted.
pub const AGENT_UNAVAILABLE: i32 = 69;

/// The environment of the services and the first boot.
fn service_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [("PATH", DEFAULT_PATH), ("HOME", "/root"), ("TERM", "linux")]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn service_spec(argv: &[&str]) -> Spec {
    Spec {
        program: argv[0].into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: service_env(&[]),
        working_dir: None,
        identity: None,
        streams: Streams::Service,
    }
}

/// Whether `/etc/ssh` holds at least one host private key.
fn has_host_keys(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("ssh_host_") && name.ends_with("_key")
        })
    })
}

struct Stopping {
    machine: Shutdown,
    waiting_until: Option<Instant>,
}

/// PID 1 after boot.
pub struct Init {
    signals: Signals,
    config: InitConfig,
    workload_exit: WorkloadExit,
    services: Vec<Service>,
    first_boot: Option<u32>,
    workload: Option<u32>,
    children_left: bool,
    shutting_down: bool,
    stopping: Option<Stopping>,
}

impl Init {
    /// The loop for `config`, taking signals from `signals`.
    pub fn new(signals: Signals, config: InitConfig, workload_exit: WorkloadExit) -> Self {
        Self {
            signals,
            config,
            workload_exit,
            services: Vec::new(),
            first_boot: None,
            workload: None,
            children_left: true,
            shutting_down: false,
            stopping: None,
        }
    }

    /// Starts the agent, then the first boot or, without one, sshd and
    /// the workload; then runs the loop forever.
    pub fn run(mut self) -> ! {
        let now = Instant::now();
        self.start_agent(now);
        if !self.start_first_boot() {
            self.after_first_boot(now);
        }
        loop {
            let now = Instant::now();
            let deadline = self
                .services
                .iter()
                .filter_map(Service::due)
                .chain(self.stopping.as_ref().and_then(|s| s.waiting_until))
                .min();
            let timeout = deadline.map(|at| at.saturating_duration_since(now));
            match self.signals.wait(timeout) {
                Some(signal) if signals::is_shutdown(signal) => {
                    self.begin_shutdown(&format!("signal {signal} received"))
                }
                _ => {}
            }
            self.reap();
            let now = Instant::now();
            for service in &mut self.services {
                service.poll(now);
            }
            self.advance_shutdown();
        }
    }

    fn start_agent(&mut self, now: Instant) {
        if !Path::new(AGENT_PATH).exists() {
            say!("{AGENT_PATH} is missing; no vsock agent");
            return;
        }
        let port = self.config.vsock_port.to_string();
        let spec = service_spec(&[AGENT_PATH, "--port", &port]);
        let mut agent = Service::new("banger-vsock-agent", spec, &[AGENT_UNAVAILABLE]);
        agent.start(now);
        self.services.push(agent);
    }

    /// Starts the first-boot script if its marker is there; `false` if
    /// there is nothing to wait for.
    fn start_first_boot(&mut self) -> bool {
        if !Path::new(crate::FIRST_BOOT_MARKER).exists() {
            return false;
        }
        if !Path::new(SHELL).exists() {
            say!("first boot skipped: the image has no {SHELL}");
            return false;
        }
        let mut spec = service_spec(&[SHELL, FIRST_BOOT_SCRIPT]);
        spec.env = service_env(&[("BANGER_INIT", "1")]);
        match spawn::spawn(&spec) {
            Ok(pid) => {
                say!("first boot: running {FIRST_BOOT_SCRIPT} (pid {pid})");
                self.first_boot = Some(pid);
                true
            }
            Err(e) => {
                say!("first boot: cannot run {FIRST_BOOT_SCRIPT}: {e}");
                false
            }
        }
    }

    fn after_first_boot(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.start_sshd(now);
        self.start_workload();
    }

    fn start_sshd(&mut self, now: Instant) {
        if !Path::new(SSHD_PATH).exists() {
            say!("sshd not started: {SSHD_PATH} is not installed");
            return;
        }
        if !has_host_keys(Path::new("/etc/ssh")) {
            say!("sshd not started: /etc/ssh has no host keys");
            return;
        }
        if let Err(e) = fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create("/run/sshd")
        {
            say!("warning: cannot create /run/sshd: {e}");
        }
        let mut sshd = Service::new("sshd", service_spec(&[SSHD_PATH, "-D", "-e"]), &[]);
        sshd.start(now);
        self.services.push(sshd);
    }

    fn start_workload(&mut self) {
        let passwd = parse_passwd(&fs::read_to_string("/etc/passwd").unwrap_or_default());
        let groups = parse_group(&fs::read_to_string("/etc/group").unwrap_or_default());
        let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let resolved = workload::resolve(
            &self.config,
            &passwd,
            &groups,
            hostname.trim(),
            workload::is_executable,
        );
        let workload = match resolved {
            Ok(Some(workload)) => workload,
            Ok(None) => {
                say!("no workload: the image has neither Entrypoint nor Cmd");
                return;
            }
            Err(e) => {
                say!("cannot start the workload: {e}; the guest keeps running");
                return;
            }
        };
        if !workload.working_dir.is_dir() {
            say!(
                "creating the working directory {}",
                workload.working_dir.display()
            );
            if let Err(e) = fs::create_dir_all(&workload.working_dir) {
                say!("cannot create {}: {e}", workload.working_dir.display());
            }
        }
        let id = &workload.identity;
        let spec = Spec {
            program: workload.program.clone(),
            argv: workload.argv.clone(),
            env: workload.env.clone(),
            working_dir: Some(workload.working_dir.clone()),
            identity: Some(id.clone()),
            streams: Streams::Console,
        };
        match spawn::spawn(&spec) {
            Ok(pid) => {
                say!(
                    "started the workload {:?} (pid {pid}) as {}:{} in {}",
                    workload.argv,
                    id.uid,
                    id.gid,
                    workload.working_dir.display()
                );
                self.workload = Some(pid);
            }
            Err(e) => say!(
                "cannot start the workload {}: {e}; the guest keeps running",
                workload.program.display()
            ),
        }
    }

    /// Collects every exited child and acts on the ones it knows.
    fn reap(&mut self) {
        loop {
            match spawn::reap_one() {
                Reaped::Child(pid, status) => self.on_exit(pid, status),
                Reaped::Running => {
                    self.children_left = true;
                    return;
                }
                Reaped::NoChildren => {
                    self.children_left = false;
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: u32, status: libc::c_int) {
        let now = Instant::now();
        if self
            .services
            .iter_mut()
            .any(|s| s.on_exit(pid, status, now))
        {
            return;
        }
        if self.first_boot == Some(pid) {
            self.first_boot = None;
            say!("first boot {}", spawn::describe(status));
            self.after_first_boot(now);
        } else if self.workload == Some(pid) {
            self.workload = None;
            say!("the workload {}", spawn::describe(status));
            if self.workload_exit == WorkloadExit::PowerOff {
                self.begin_shutdown("the workload exited and banger.workload_exit=poweroff");
            }
        }
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.shutting_down {
            say!("shutdown: already shutting down ({why})");
            return;
        }
        say!("shutdown: {why}");
        self.shutting_down = true;
        self.stopping = Some(Stopping {
            machine: Shutdown::new(GRACE),
            waiting_until: None,
        });
    }

    /// Carries out shutdown actions until one has to wait.
    fn advance_shutdown(&mut self) {
        let Some(mut stopping) = self.stopping.take() else {
            return;
        };
        loop {
            if let Some(until) = stopping.waiting_until {
                if self.children_left && Instant::now() < until {
                    break;
                }
                stopping.waiting_until = None;
            }
            let Some(action) = stopping.machine.next(self.children_left) else {
                break;
            };
            match action {
                Action::WaitForExit(grace) => {
                    say!(
                        "shutdown: waiting up to {}s for processes to exit",
                        grace.as_secs()
                    );
                    stopping.waiting_until = Some(Instant::now() + grace);
                    self.reap();
                }
                action => self.perform(action),
            }
        }
        self.stopping = Some(stopping);
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::StopRespawning => {
                say!("shutdown: no more restarts");
                self.services.iter_mut().for_each(Service::stop_respawning);
            }
            Action::TermAll => {
                say!("shutdown: sending SIGTERM to all processes");
                // SAFETY: plain syscalls; -1 is every process but PID 1.
                unsafe {
                    libc::kill(-1, libc::SIGTERM);
                    libc::kill(-1, libc::SIGCONT);
                }
                self.children_left = true;
            }
            Action::KillAll => {
                say!("shutdown: sending SIGKILL to the remaining processes");
                // SAFETY: plain syscall.
                unsafe { libc::kill(-1, libc::SIGKILL) };
            }
            Action::Sync => {
                say!("shutdown: syncing filesystems");
                // SAFETY: plain syscall.
                unsafe { libc::sync() };
            }
            Action::RemountRootReadOnly => match mounts::remount_root(libc::MS_RDONLY) {
                Ok(()) => say!("shutdown: remounted / read-only"),
                Err(e) => say!("shutdown: cannot remount / read-only: {e}"),
            },
            Action::PowerOff => power_off(),
            Action::WaitForExit(_) => {}
        }
    }
}

/// `reboot(RB_POWER_OFF)`; if the kernel refuses, halt; PID 1 never exits.
fn power_off() -> ! {
    say!("shutdown: powering off");
    // SAFETY: plain syscalls.
    unsafe {
        libc::reboot(libc::RB_POWER_OFF);
        say!(
            "shutdown: power off failed: {}",
            std::io::Error::last_os_error()
        );
        libc::reboot(libc::RB_HALT_SYSTEM);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_and_service_env() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_host_keys(dir.path()));
        fs::write(dir.path().join("ssh_host_ed25519_key.pub"), "").unwrap();
        fs::write(dir.path().join("sshd_config"), "").unwrap();
        assert!(!has_host_keys(dir.path()));
        fs::write(dir.path().join("ssh_host_ed25519_key"), "").unwrap();
        assert!(has_host_keys(dir.path()));
        assert!(!has_host_keys(&dir.path().join("missing")));
        let env = service_env(&[("BANGER_INIT", "1")]);
        assert_eq!(env[0], ("PATH".to_owned(), DEFAULT_PATH.to_owned()));
        assert_eq!(
            env.last().unwrap(),
            &("BANGER_INIT".to_owned(), "1".to_owned())
        );
        let spec = service_spec(&[AGENT_PATH, "--port", "52"]);
        assert_eq!(spec.argv, [AGENT_PATH, "--port", "52"]);
        assert_eq!(spec.streams, Streams::Service);
    }
}
