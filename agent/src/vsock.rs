//! A minimal `AF_VSOCK` stream listener on top of libc.
//!
//! std has no vsock support, so the socket calls go through libc; each
//! `unsafe` block is a single syscall on a descriptor this module owns.

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::server::Connection;

/// Why the vsock listener could not be opened.
#[derive(Debug)]
pub enum VsockError {
    /// The kernel has no vsock support: `socket(AF_VSOCK)` failed with
    /// `EAFNOSUPPORT` (the `vsock` module is missing or not loaded), or
    /// binding failed with `EADDRNOTAVAIL` (no transport such as
    /// `vmw_vsock_virtio_transport`).
    Unavailable(io::Error),
    /// Any other failure creating, binding or listening on the socket.
    Other {
        /// The step that failed: `socket`, `bind` or `listen`.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl std::fmt::Display for VsockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(e) => write!(
                f,
                "AF_VSOCK is unavailable ({e}); is the guest's vsock device present and \
                 are the vsock and vmw_vsock_virtio_transport modules loaded?"
            ),
            Self::Other { step, source } => write!(f, "vsock {step} failed: {source}"),
        }
    }
}

impl std::error::Error for VsockError {}

/// A listening `AF_VSOCK` stream socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    /// Listens on `port` for connections from any CID (the host included).
    pub fn bind(port: u32) -> Result<Self, VsockError> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw =
            unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT) => VsockError::Unavailable(e),
                _ => VsockError::Other {
                    step: "socket",
                    source: e,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
        addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        addr.svm_port = port;
        addr.svm_cid = libc::VMADDR_CID_ANY;
        // SAFETY: `addr` is a valid sockaddr_vm of the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_vm).cast(),
                size_of::<libc::sockaddr_vm>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EADDRNOTAVAIL) => VsockError::Unavailable(e),
                _ => VsockError::Other {
                    step: "bind",
                    source: e,
                },
            });
        }
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::listen(fd.as_raw_fd(), 16) } < 0 {
            return Err(VsockError::Other {
                step: "listen",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Self { fd })
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<VsockStream> {
        loop {
            // SAFETY: plain syscall; we do not ask for the peer address.
            let raw = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if raw >= 0 {
                // SAFETY: `raw` is a fresh descriptor that nothing else owns.
                return Ok(VsockStream(File::from(unsafe {
                    OwnedFd::from_raw_fd(raw)
                })));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Connections as they arrive; never ends.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<VsockStream>> + '_ {
        std::iter::repeat_with(|| self.accept())
    }
}

/// A vsock connection, accepted or made. Reads and writes are plain
/// `read(2)` and `write(2)` on the socket, which is what `File` does.
#[derive(Debug)]
pub struct VsockStream(File);

impl VsockStream {
    /// Connects to `port` at `cid` (1 is the local guest itself through
    /// `vsock_loopback`, 2 the host).
    pub fn connect(cid: u32, port: u32) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw =
            unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
        addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        addr.svm_port = port;
        addr.svm_cid = cid;
        loop {
            // SAFETY: `addr` is a valid sockaddr_vm of the length passed.
            let rc = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_vm).cast(),
                    size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(Self(File::from(fd)));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for VsockStream {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        crate::sockopt::set_receive_timeout(&self.0, timeout)
    }
}
