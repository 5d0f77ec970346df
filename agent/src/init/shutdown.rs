//! Step 10, the pure part: the order of a shutdown as a state machine that
//! PID 1 drives and tests assert on.

use std::time::Duration;

/// How long processes get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);
/// How long to wait for processes to be reaped after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(1);

/// One thing PID 1 does while shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Restart nothing from now on; start nothing.
    StopRespawning,
    /// `kill(-1, SIGTERM)` (and SIGCONT, so stopped processes see it).
    TermAll,
    /// Reap children until none is left or the time is up, then ask for
    /// the next action.
    WaitForExit(Duration),
    /// `kill(-1, SIGKILL)`.
    KillAll,
    /// `sync()`.
    Sync,
    /// Remount `/` read-only (`MS_REMOUNT | MS_RDONLY`).
    RemountRootReadOnly,
    /// `reboot(RB_POWER_OFF)`.
    PowerOff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Start,
    Stopped,
    Termed,
    Waited,
    Killed,
    KillWaited,
    Synced,
    Remounted,
    SyncedAgain,
    Off,
}

/// The shutdown sequence: stop respawning, SIGTERM to all, a grace period
/// that ends early when no process is left, SIGKILL to the rest (skipped
/// when none is left), sync, remount `/` read-only, sync, power off.
#[derive(Clone, Debug)]
pub struct Shutdown {
    stage: Stage,
    grace: Duration,
}

impl Shutdown {
    /// A sequence with `grace` between SIGTERM and SIGKILL.
    pub fn new(grace: Duration) -> Self {
        Self {
            stage: Stage::Start,
            grace,
        }
    }

    /// The next action, given whether any process other than PID 1 is
    /// left; `None` once the power-off has been asked for.
    pub fn next(&mut self, processes_left: bool) -> Option<Action> {
        let (stage, action) = match self.stage {
            Stage::Start => (Stage::Stopped, Action::StopRespawning),
            Stage::Stopped => (Stage::Termed, Action::TermAll),
            Stage::Termed => (Stage::Waited, Action::WaitForExit(self.grace)),
            Stage::Waited if processes_left => (Stage::Killed, Action::KillAll),
            Stage::Waited | Stage::KillWaited => (Stage::Synced, Action::Sync),
            Stage::Killed => (Stage::KillWaited, Action::WaitForExit(KILL_WAIT)),
            Stage::Synced => (Stage::Remounted, Action::RemountRootReadOnly),
            Stage::Remounted => (Stage::SyncedAgain, Action::Sync),
            Stage::SyncedAgain => (Stage::Off, Action::PowerOff),
            Stage::Off => return None,
        };
        self.stage = stage;
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// Runs the machine to its end; `left(action_index)` says whether
    /// processes remain when action `i` is asked for.
    fn run(left: impl Fn(usize) -> bool) -> Vec<Action> {
        let mut shutdown = Shutdown::new(GRACE);
        let mut actions = Vec::new();
        while let Some(action) = shutdown.next(left(actions.len())) {
            actions.push(action);
            assert!(actions.len() < 20, "{actions:?}");
        }
        actions
    }

    #[test]
    fn stubborn_processes_get_killed() {
        assert_eq!(
            run(|_| true),
            [
                StopRespawning,
                TermAll,
                WaitForExit(GRACE),
                KillAll,
                WaitForExit(KILL_WAIT),
                Sync,
                RemountRootReadOnly,
                Sync,
                PowerOff,
            ]
        );
    }

    #[test]
    fn no_kill_when_everything_exited_in_the_grace_period() {
        // Processes are gone by the time the grace period ends (action 3).
        assert_eq!(
            run(|i| i < 3),
            [
                StopRespawning,
                TermAll,
                WaitForExit(GRACE),
                Sync,
                RemountRootReadOnly,
                Sync,
                PowerOff
            ]
        );
    }

    #[test]
    fn the_machine_ends_and_stays_ended() {
        let mut shutdown = Shutdown::new(Duration::ZERO);
        while shutdown.next(false).is_some() {}
        assert_eq!(shutdown.next(true), None);
        assert_eq!(
            Shutdown::new(Duration::from_secs(2)).next(true),
            Some(StopRespawning)
        );
    }
}
