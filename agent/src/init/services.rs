//! Supervised services (the vsock agent, sshd): restarted when they die,
//! after a backoff that grows while they keep dying young.

use std::time::{Duration, Instant};

use super::spawn::{self, Spec};
use crate::say;

/// The first restart delay.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest restart delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// A service that ran this long was healthy: its delay starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// What to do after a service exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Start it again after this delay.
    After(Duration),
    /// Leave it stopped: it exited with one of its no-restart codes.
    Never,
}

/// The restart delay of one service.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: MIN_DELAY }
    }
}

impl Backoff {
    /// Decides after an exit with `code` (`None`: killed by a signal)
    /// after running `ran_for`. The delay doubles on each quick death up to
    /// [`MAX_DELAY`] and starts over after a run of [`STABLE_AFTER`].
    pub fn on_exit(&mut self, code: Option<i32>, ran_for: Duration, no_restart: &[i32]) -> Restart {
        if code.is_some_and(|code| no_restart.contains(&code)) {
            return Restart::Never;
        }
        if ran_for >= STABLE_AFTER {
            self.next = MIN_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        Restart::After(delay)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running { pid: u32, since: Instant },
    Waiting(Instant),
    Stopped,
}

/// A supervised process.
#[derive(Debug)]
pub struct Service {
    /// Its name in log lines.
    pub name: &'static str,
    spec: Spec,
    no_restart: &'static [i32],
    backoff: Backoff,
    respawn: bool,
    state: State,
}

impl Service {
    /// A service not yet started; exit codes in `no_restart` stop it for
    /// good.
    pub fn new(name: &'static str, spec: Spec, no_restart: &'static [i32]) -> Self {
        Self {
            name,
            spec,
            no_restart,
            backoff: Backoff::default(),
            respawn: true,
            state: State::Stopped,
        }
    }

    /// Starts it now; a failure to start is retried like an exit.
    pub fn start(&mut self, now: Instant) {
        match spawn::spawn(&self.spec) {
            Ok(pid) => {
                say!("started {} (pid {pid})", self.name);
                self.state = State::Running { pid, since: now };
            }
            Err(e) => {
                let delay = match self.backoff.on_exit(None, Duration::ZERO, &[]) {
                    Restart::After(delay) => delay,
                    Restart::Never => MAX_DELAY,
                };
                say!(
                    "cannot start {}: {e}; retrying in {}s",
                    self.name,
                    delay.as_secs()
                );
                self.state = State::Waiting(now + delay);
            }
        }
    }

    /// Handles the exit of `pid`; `false` if it is not this service's.
    pub fn on_exit(&mut self, pid: u32, status: libc::c_int, now: Instant) -> bool {
        let State::Running { pid: own, since } = self.state else {
            return false;
        };
        if own != pid {
            return false;
        }
        if !self.respawn {
            say!("{} {}", self.name, spawn::describe(status));
            self.state = State::Stopped;
            return true;
        }
        let code = spawn::exit_code(status);
        match self.backoff.on_exit(code, now - since, self.no_restart) {
            Restart::After(delay) => {
                say!(
                    "{} {}; restarting in {}s",
                    self.name,
                    spawn::describe(status),
                    delay.as_secs()
                );
                self.state = State::Waiting(now + delay);
            }
            Restart::Never => {
                say!(
                    "{} {}; not restarting it",
                    self.name,
                    spawn::describe(status)
                );
                self.state = State::Stopped;
            }
        }
        true
    }

    /// When it is due to restart, if it waits.
    pub fn due(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            _ => None,
        }
    }

    /// Restarts it if it is due at `now`.
    pub fn poll(&mut self, now: Instant) {
        if self.due().is_some_and(|at| at <= now) {
            self.start(now);
        }
    }

    /// Stops restarting it; a running process is left to the shutdown's
    /// SIGTERM.
    pub fn stop_respawning(&mut self) {
        if let State::Waiting(_) = self.state {
            self.state = State::Stopped;
        }
        self.respawn = false;
    }

    /// Whether it is stopped for good after its current run, if any.
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..7)
            .map(|_| b.on_exit(Some(1), Duration::ZERO, &[69]))
            .collect();
        let expect: Vec<_> = [1, 2, 4, 8, 16, 30, 30]
            .iter()
            .map(|s| Restart::After(S * *s))
            .collect();
        assert_eq!(delays, expect);
        // A long run starts over.
        assert_eq!(b.on_exit(None, STABLE_AFTER, &[69]), Restart::After(S));
        assert_eq!(b.on_exit(Some(0), S, &[69]), Restart::After(2 * S));
    }

    #[test]
    fn no_restart_codes_stop_the_service() {
        let mut b = Backoff::default();
        assert_eq!(b.on_exit(Some(69), Duration::ZERO, &[69]), Restart::Never);
        // Killed by a signal is never a no-restart code.
        assert_eq!(b.on_exit(None, Duration::ZERO, &[69]), Restart::After(S));
    }

    fn true_spec() -> Spec {
        Spec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "exit 69".into()],
            env: vec![],
            working_dir: None,
            identity: None,
            streams: spawn::Streams::Service,
        }
    }

    #[test]
    fn a_service_is_restarted_or_left_stopped() {
        let now = Instant::now();
        let mut service = Service::new("test", true_spec(), &[69]);
        service.start(now);
        let State::Running { pid, .. } = service.state else {
            panic!("{:?}", service.state)
        };
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        assert!(!service.on_exit(pid + 1, status, now));
        assert!(service.on_exit(pid, status, now));
        assert!(service.is_stopped());
        assert_eq!(service.due(), None);

        // Exit 3 is restarted after the backoff; stop_respawning cancels.
        let mut service = Service::new("test", true_spec(), &[]);
        service.state = State::Running {
            pid: 4242,
            since: now,
        };
        assert!(service.on_exit(4242, 3 << 8, now));
        assert_eq!(service.due(), Some(now + S));
        service.poll(now); // not due yet
        assert_eq!(service.due(), Some(now + S));
        service.stop_respawning();
        assert_eq!(service.due(), None);
        assert!(service.is_stopped());

        // A running service exits for good after stop_respawning.
        let mut service = Service::new("test", true_spec(), &[]);
        service.state = State::Running {
            pid: 4242,
            since: now,
        };
        service.stop_respawning();
        assert!(!service.is_stopped());
        assert!(service.on_exit(4242, 15, now));
        assert!(service.is_stopped());
        assert_eq!(service.due(), None);
    }
}
