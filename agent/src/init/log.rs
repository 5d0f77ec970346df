//! `banger-init: ...` lines on standard error, which is the console when
//! banger-init runs as PID 1.
//!
//! Lines are written with one `write(2)` each and errors are ignored: PID 1
//! must not die (std's `eprintln!` panics when the write fails) because a
//! serial console went away.

use std::fmt;

/// The prefix of every line.
pub const PREFIX: &str = "banger-init: ";

/// Writes one log line. Use [`say!`](crate::say) rather than calling this.
pub fn line(args: fmt::Arguments<'_>) {
    let text = format!("{PREFIX}{args}\n");
    let mut bytes = text.as_bytes();
    while !bytes.is_empty() {
        // SAFETY: writes from a valid buffer of the length given.
        let n = unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            return;
        }
    }
}

/// `say!("mounted {}", path)`: logs `banger-init: mounted /proc`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::init::log::line(format_args!($($arg)*))
    };
}
