//! Serving connections: one request line in, one response line out.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::health::{Probe, Request};

/// What the server does after answering `poweroff`. The agent uses
/// [`request_power_off`](crate::poweroff::request_power_off); tests inject
/// their own.
pub type PowerOff = Arc<dyn Fn() + Send + Sync>;

/// Longest request line accepted; the requests are `health` and `poweroff`.
pub const MAX_REQUEST_LEN: usize = 256;

/// How long a client may take to send its request before it is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected stream the server can answer on.
pub trait Connection: Read + Write + Send + 'static {
    /// Bounds how long a read may block.
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl Connection for UnixStream {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        UnixStream::set_read_timeout(self, Some(timeout))
    }
}

/// Reads one request line from `conn`, answers it, closes the connection
/// and returns the request, so the caller acts on a `poweroff` only once
/// the client has its whole answer.
pub fn serve_connection<C: Connection>(mut conn: C, probe: &Probe) -> io::Result<Request> {
    conn.set_read_timeout(REQUEST_TIMEOUT)?;
    let line = read_line(&mut conn)?;
    let request = Request::parse(&String::from_utf8_lossy(&line));
    let mut response = request.answer(probe);
    response.push('\n');
    conn.write_all(response.as_bytes())?;
    conn.flush()?;
    drop(conn);
    Ok(request)
}

/// The real power-off: asks PID 1 and logs how.
pub fn power_off_guest() -> PowerOff {
    Arc::new(|| match crate::poweroff::request_power_off() {
        Ok(how) => eprintln!("banger-vsock-agent: poweroff requested: {how}"),
        Err(e) => eprintln!("banger-vsock-agent: poweroff requested but failed: {e}"),
    })
}

/// Reads up to the first newline, EOF or [`MAX_REQUEST_LEN`] bytes.
fn read_line(conn: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = [0u8; 64];
    while line.len() < MAX_REQUEST_LEN {
        let n = match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..end]);
            break;
        }
        line.extend_from_slice(&buf[..n]);
    }
    line.truncate(MAX_REQUEST_LEN);
    Ok(line)
}

/// Serves every connection `incoming` yields, each on its own thread so a
/// slow client cannot stall the others; `poweroff` powers the guest off
/// ([`power_off_guest`]). Returns only if `incoming` ends.
pub fn serve<C, I>(incoming: I, probe: Arc<Probe>)
where
    C: Connection,
    I: IntoIterator<Item = io::Result<C>>,
{
    serve_with(incoming, probe, power_off_guest());
}

/// [`serve`] with `power_off` run after answering a `poweroff` request.
pub fn serve_with<C, I>(incoming: I, probe: Arc<Probe>, power_off: PowerOff)
where
    C: Connection,
    I: IntoIterator<Item = io::Result<C>>,
{
    for conn in incoming {
        match conn {
            Ok(conn) => {
                let probe = Arc::clone(&probe);
                let power_off = Arc::clone(&power_off);
                thread::spawn(move || match serve_connection(conn, &probe) {
                    Ok(Request::PowerOff) => power_off(),
                    Ok(_) => {}
                    Err(e) => eprintln!("banger-vsock-agent: connection failed: {e}"),
                });
            }
            Err(e) => {
                eprintln!("banger-vsock-agent: accept failed: {e}");
                // Avoid a hot loop on persistent errors such as EMFILE.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
