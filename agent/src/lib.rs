//! The guest side of banger: `banger-vsock-agent`, the health-check daemon
//! banger puts into every guest, and `banger-init` ([`init`]), a static
//! PID 1 for images that have no init.
//!
//! The agent listens on an `AF_VSOCK` stream port (by default
//! [`DEFAULT_PORT`]) and answers one request per connection. The protocol is
//! a single text line each way:
//!
//! ```text
//! -> health
//! <- {"status":"ok","uptime":12.34,"hostname":"vm1","first_boot_pending":false,"version":"0.1.0"}
//! -> poweroff
//! <- {"status":"powering-off"}
//! ```
//!
//! After answering `poweroff` the agent closes the connection and asks PID 1
//! to power the guest off ([`poweroff`]): `kill(1, SIGTERM)` for
//! banger-init, `kill(1, SIGRTMIN+4)` for systemd, `kill(1, SIGUSR2)` for
//! busybox init (`/proc/1/exe` is a file named `busybox`), otherwise it runs
//! `/sbin/poweroff` (or `/usr/sbin/poweroff`, `/bin/poweroff`). Any other
//! line gets `{"status":"error","error":"..."}`.
//!
//! The logic lives in this library so it can be tested over a Unix socket;
//! `main.rs` only parses arguments and opens the vsock listener.

pub mod health;
pub mod init;
pub mod poweroff;
pub mod server;
pub mod sockopt;
pub mod vsock;

/// The vsock port the agent listens on unless told otherwise (`--port`).
/// banger's injected unit passes the port explicitly, so this is only the
/// default of both sides.
pub const DEFAULT_PORT: u32 = 52;

/// Where banger's first-boot marker lives in the guest; the first-boot unit
/// removes it once the guest has been provisioned.
pub const FIRST_BOOT_MARKER: &str = "/var/lib/banger/first-boot-pending";
