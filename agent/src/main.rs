//! The banger guest health agent. See the library docs for the protocol.

use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::sync::Arc;

use banger_vsock_agent::health::Probe;
use banger_vsock_agent::server::serve;
use banger_vsock_agent::server::Connection as _;
use banger_vsock_agent::vsock::{VsockError, VsockListener, VsockStream};
use banger_vsock_agent::DEFAULT_PORT;

/// `EX_UNAVAILABLE` from sysexits.h: the unit's `RestartPreventExitStatus=`
/// names it so systemd does not restart the agent in a loop on a guest
/// without vsock.
const EXIT_UNAVAILABLE: u8 = 69;
/// `EX_USAGE` from sysexits.h.
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "usage: banger-vsock-agent [--port PORT] [--unix PATH]
       banger-vsock-agent --request LINE [--cid CID] [--port PORT]

Answers `health` and `poweroff` requests with a JSON line; after
`poweroff` it asks PID 1 to power the guest off.
  --port PORT     AF_VSOCK port to listen on, or to connect to (default 52)
  --unix PATH     listen on a Unix socket at PATH instead (for debugging)
  --request LINE  be the client: send LINE to the agent at CID (default 1,
                  this guest, through vsock_loopback) and print its answer";

enum Listen {
    Vsock(u32),
    Unix(String),
    /// Client mode: one request to an agent.
    Request {
        line: String,
        cid: u32,
        port: u32,
    },
}

/// The local CID: the guest itself, through `vsock_loopback`.
const VMADDR_CID_LOCAL: u32 = 1;

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Listen>, String> {
    let mut port = DEFAULT_PORT;
    let mut unix = None;
    let mut request = None;
    let mut cid = VMADDR_CID_LOCAL;
    let number = |name: &str, value: Option<String>| -> Result<u32, String> {
        let value = value.ok_or(format!("{name} needs a value"))?;
        value
            .parse()
            .map_err(|_| format!("invalid {} {value:?}", name.trim_start_matches('-')))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = number("--port", args.next())?,
            "--cid" => cid = number("--cid", args.next())?,
            "--unix" => unix = Some(args.next().ok_or("--unix needs a path")?),
            "--request" => request = Some(args.next().ok_or("--request needs a line")?),
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
    Ok(Some(match (request, unix) {
        (Some(_), Some(_)) => return Err("--request and --unix exclude each other".into()),
        (Some(line), None) => Listen::Request { line, cid, port },
        (None, Some(path)) => Listen::Unix(path),
        (None, None) => Listen::Vsock(port),
    }))
}

/// Sends `line` to the agent at `cid`:`port`, prints the answer line.
fn request(line: &str, cid: u32, port: u32) -> ExitCode {
    use std::io::{BufRead as _, Write as _};
    let answer = VsockStream::connect(cid, port).and_then(|mut stream| {
        stream.set_read_timeout(std::time::Duration::from_secs(10))?;
        stream.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        std::io::BufReader::new(stream).read_line(&mut answer)?;
        Ok(answer)
    });
    match answer {
        Ok(answer) if !answer.is_empty() => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("banger-vsock-agent: the agent at {cid}:{port} closed without answering");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("banger-vsock-agent: asking the agent at {cid}:{port}: {e}");
            ExitCode::FAILURE
        }
    }
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
        Listen::Request { line, cid, port } => return request(&line, cid, port),
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
