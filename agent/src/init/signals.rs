//! PID 1's signals. The ones it acts on are blocked and taken
//! synchronously with `sigtimedwait`, so the main loop never races a
//! handler; each also gets an empty handler because the kernel drops
//! signals to PID 1 whose disposition is the default. SIGHUP and SIGQUIT
//! are ignored.

use std::io;
use std::time::Duration;

/// Signals the main loop waits for.
pub const HANDLED: [libc::c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR2,
    libc::SIGPWR,
];

/// Signals PID 1 ignores.
pub const IGNORED: [libc::c_int; 2] = [libc::SIGHUP, libc::SIGQUIT];

/// Whether `signal` asks PID 1 to shut down: SIGTERM, SIGINT
/// (ctrl-alt-del), SIGUSR2 and SIGPWR.
pub fn is_shutdown(signal: libc::c_int) -> bool {
    matches!(
        signal,
        libc::SIGTERM | libc::SIGINT | libc::SIGUSR2 | libc::SIGPWR
    )
}

extern "C" fn nothing(_: libc::c_int) {}

/// The blocked set that [`Signals::wait`] takes signals from.
#[derive(Clone, Copy)]
pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Blocks [`HANDLED`], gives each an empty handler, ignores
    /// [`IGNORED`].
    pub fn install() -> io::Result<Self> {
        // SAFETY: sigset_t and sigaction are plain old data initialised
        // by the calls; each call gets valid pointers.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in HANDLED {
                libc::sigaddset(&mut set, signal);
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_RESTART;
                if libc::sigaction(signal, &action, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for signal in IGNORED {
                libc::signal(signal, libc::SIG_IGN);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { set })
        }
    }

    /// The next pending signal, waiting at most `timeout` (`None`: up to
    /// a minute); `None` on timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<libc::c_int> {
        let timeout = timeout.unwrap_or(Duration::from_secs(60));
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: valid set and timespec; no siginfo wanted.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (signal > 0).then_some(signal)
    }
}

/// `reboot(RB_DISABLE_CAD)`: ctrl-alt-del sends SIGINT to PID 1 instead
/// of rebooting at once.
pub fn disable_ctrl_alt_del() -> io::Result<()> {
    // SAFETY: plain syscall.
    if unsafe { libc::reboot(libc::RB_DISABLE_CAD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_signals() {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR2, libc::SIGPWR] {
            assert!(is_shutdown(signal));
        }
        for signal in [libc::SIGCHLD, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1] {
            assert!(!is_shutdown(signal));
        }
    }
}
