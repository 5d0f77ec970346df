//! The banger guest health agent. See the library docs for the protocol.

use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::Arc;

use banger_vsock_agent::health::Probe;
use banger_vsock_agent::server::serve;
use banger_vsock_agent::vsock::{VsockError, VsockListener};
use banger_vsock_agent::DEFAULT_PORT;

/// `EX_UNAVAILABLE` from sysexits.h: the unit's `RestartPreventExitStatus=`
/// names it so systemd does not restart the agent in a loop on a guest
/// without vsock.
const EXIT_UNAVAILABLE: u8 = 69;
/// `EX_USAGE` from sysexits.h.
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "usage: banger-vsock-agent [--port PORT] [--unix PATH]

Answers `health` and `poweroff` requests with a JSON line; after
`poweroff` it asks PID 1 to power the guest off.
  --port PORT   AF_VSOCK port to listen on (default 52)
  --unix PATH   listen on a Unix socket at PATH instead (for debugging)";

enum Listen {
    Vsock(u32),
    Unix(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Listen>, String> {
    let mut listen = Listen::Vsock(DEFAULT_PORT);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                let port = value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?;
                listen = Listen::Vsock(port);
            }
            "--unix" => listen = Listen::Unix(args.next().ok_or("--unix needs a path")?),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" => {
                println!("banger-vsock-agent {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(listen))
}

fn main() -> ExitCode {
    let listen = match parse_args(std::env::args().skip(1)) {
        Ok(Some(listen)) => listen,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("banger-vsock-agent: {message}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let probe = Arc::new(Probe::default());
    match listen {
        Listen::Vsock(port) => match VsockListener::bind(port) {
            Ok(listener) => {
                eprintln!("banger-vsock-agent: listening on vsock port {port}");
                serve(listener.incoming(), probe);
            }
            Err(e @ VsockError::Unavailable(_)) => {
                eprintln!("banger-vsock-agent: {e}; exiting");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
            Err(e) => {
                eprintln!("banger-vsock-agent: cannot listen on vsock port {port}: {e}");
                return ExitCode::FAILURE;
            }
        },
        Listen::Unix(path) => match UnixListener::bind(&path) {
            Ok(listener) => {
                eprintln!("banger-vsock-agent: listening on {path}");
                serve(listener.incoming(), probe);
            }
            Err(e) => {
                eprintln!("banger-vsock-agent: cannot listen on {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::FAILURE
}
