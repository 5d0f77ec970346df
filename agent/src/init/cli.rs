//! banger-init's command line: PID 1, or one step on its own.

use std::path::PathBuf;
use std::time::Duration;

use super::cmdline::Cmdline;
use super::{modules, network, pid1};
use crate::say;

/// The usage text.
pub const USAGE: &str = "usage: banger-init [network | modules | --help | --version]

As PID 1 (the kernel's init=), boots the guest: mounts /proc, /sys, /dev,
/run, ..., sets the host name, loads modules-load.d modules, applies ip=,
starts banger-vsock-agent, first boot, sshd and the image's workload from
/etc/banger/init.json, reaps orphans and powers off on SIGTERM, SIGINT,
SIGUSR2 or SIGPWR.

Not as PID 1:
  network    apply the kernel's ip= (address, route, host name, resolv.conf)
             over rtnetlink and exit 0 on success, 1 on failure
  modules    load the modules named in modules-load.d and modules_load=
             and exit 0 if all are in, 1 otherwise

Environment (network, modules): BANGER_CMDLINE (default /proc/cmdline),
BANGER_ROOT (prefix of /sys, /etc, /lib/modules, default /),
BANGER_NET_WAIT (seconds to wait for the interface, default 10).";

/// `EX_USAGE` from sysexits.h.
pub const EXIT_USAGE: i32 = 64;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Boot the guest.
    Pid1,
    /// Step 4 alone.
    Network,
    /// Step 3 alone.
    Modules,
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// Picks the mode. As PID 1 the arguments (the kernel passes on whatever
/// follows `--` or is not a parameter) are ignored.
pub fn parse(args: &[String], pid: u32) -> Result<Mode, String> {
    if pid == 1 {
        return Ok(Mode::Pid1);
    }
    match args {
        [] => Err("not running as PID 1; give a subcommand".into()),
        [one] => match one.as_str() {
            "network" => Ok(Mode::Network),
            "modules" => Ok(Mode::Modules),
            "--help" | "-h" | "help" => Ok(Mode::Help),
            "--version" | "-V" => Ok(Mode::Version),
            other => Err(format!("unknown argument {other:?}")),
        },
        [_, extra, ..] => Err(format!("unexpected argument {extra:?}")),
    }
}

struct Environment {
    cmdline: Cmdline,
    root: PathBuf,
    wait: Duration,
}

fn environment() -> Result<Environment, String> {
    let cmdline_path = std::env::var_os("BANGER_CMDLINE").unwrap_or_else(|| "/proc/cmdline".into());
    let text = std::fs::read_to_string(&cmdline_path).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            PathBuf::from(&cmdline_path).display()
        )
    })?;
    let root = std::env::var_os("BANGER_ROOT")
        .filter(|root| !root.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let wait = match std::env::var("BANGER_NET_WAIT") {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| format!("BANGER_NET_WAIT={secs:?} is not a number of seconds"))?,
        ),
        Err(_) => network::DEFAULT_WAIT,
    };
    Ok(Environment {
        cmdline: Cmdline::parse(&text),
        root,
        wait,
    })
}

/// The whole program: returns the exit status, or never as PID 1.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse(&args, std::process::id()) {
        Ok(mode) => mode,
        Err(e) => {
            say!("{e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let step = |run: &dyn Fn(&Environment) -> bool| match environment() {
        Ok(env) => i32::from(!run(&env)),
        Err(e) => {
            say!("{e}");
            1
        }
    };
    match mode {
        Mode::Pid1 => pid1::main(),
        Mode::Help => {
            println!("{USAGE}");
            0
        }
        Mode::Version => {
            println!("banger-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Mode::Network => step(&|env| {
            let setup = network::NetworkSetup {
                root: env.root.clone(),
                wait: env.wait,
            };
            network::run(&env.cmdline, &setup)
        }),
        Mode::Modules => step(&|env| modules::run(&env.root, &env.cmdline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn modes() {
        assert_eq!(parse(&args(&["network"]), 1), Ok(Mode::Pid1));
        assert_eq!(parse(&args(&["single", "x"]), 1), Ok(Mode::Pid1));
        assert_eq!(parse(&args(&["network"]), 42), Ok(Mode::Network));
        assert_eq!(parse(&args(&["modules"]), 42), Ok(Mode::Modules));
        assert_eq!(parse(&args(&["--help"]), 42), Ok(Mode::Help));
        assert_eq!(parse(&args(&["--version"]), 42), Ok(Mode::Version));
        assert!(parse(&args(&[]), 42)
            .unwrap_err()
            .contains("not running as PID 1"));
        assert!(parse(&args(&["start"]), 42)
            .unwrap_err()
            .contains("\"start\""));
        assert!(parse(&args(&["network", "eth0"]), 42)
            .unwrap_err()
            .contains("\"eth0\""));
    }
}
