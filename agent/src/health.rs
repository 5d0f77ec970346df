//! The health request and its JSON answer.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

/// Where the agent reads the facts it reports. Tests point these at files of
/// their own.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `/proc/uptime`: seconds since boot as the first field.
    pub uptime_path: PathBuf,
    /// `/proc/sys/kernel/hostname`: the current host name. Read from procfs
    /// rather than through libc so the static binary never touches NSS.
    pub hostname_path: PathBuf,
    /// The first-boot marker; first boot is pending while it exists.
    pub first_boot_marker: PathBuf,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            uptime_path: "/proc/uptime".into(),
            hostname_path: "/proc/sys/kernel/hostname".into(),
            first_boot_marker: crate::FIRST_BOOT_MARKER.into(),
        }
    }
}

/// What the agent knows about the guest at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// Seconds since the guest booted, if `/proc/uptime` was readable.
    pub uptime: Option<f64>,
    /// The guest's host name, if readable.
    pub hostname: Option<String>,
    /// Whether the first-boot unit has yet to finish successfully.
    pub first_boot_pending: bool,
}

impl Probe {
    /// Reads the current health facts. Unreadable facts become `None`
    /// rather than errors: a health check should still answer.
    pub fn read(&self) -> Health {
        let uptime = fs::read_to_string(&self.uptime_path)
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
            .filter(|secs| secs.is_finite());
        let hostname = fs::read_to_string(&self.hostname_path)
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        // Follows symlinks, like systemd's ConditionPathExists= on the unit.
        let first_boot_pending = self.first_boot_marker.exists();
        Health {
            uptime,
            hostname,
            first_boot_pending,
        }
    }
}

impl Health {
    /// The JSON object the agent sends for a health request (one line, no
    /// trailing newline).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"status\":\"ok\",\"uptime\":");
        match self.uptime {
            Some(secs) => {
                let _ = write!(out, "{secs:.2}");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"hostname\":");
        match &self.hostname {
            Some(name) => push_json_string(&mut out, name),
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"first_boot_pending\":{},\"version\":\"{}\"}}",
            self.first_boot_pending,
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Answers one request line. Only `health` (surrounding whitespace and case
/// ignored) is understood; anything else gets an error object.
pub fn respond(request: &str, probe: &Probe) -> String {
    if request.trim().eq_ignore_ascii_case("health") {
        probe.read().to_json()
    } else {
        let mut out = String::from("{\"status\":\"error\",\"error\":");
        push_json_string(
            &mut out,
            &format!("unknown request {:?}; send \"health\"", request.trim()),
        );
        out.push('}');
        out
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_nulls() {
        let health = Health {
            uptime: None,
            hostname: Some("a\"b\\c\u{1}".into()),
            first_boot_pending: true,
        };
        let value: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
        assert_eq!(value["hostname"], "a\"b\\c\u{1}");
        assert!(value["uptime"].is_null());
        assert_eq!(value["first_boot_pending"], true);
        assert_eq!(value["status"], "ok");
    }

    #[test]
    fn unknown_requests_get_an_error_object() {
        let value: serde_json::Value =
            serde_json::from_str(&respond("reboot\n", &Probe::default())).unwrap();
        assert_eq!(value["status"], "error");
        assert!(value["error"].as_str().unwrap().contains("reboot"));
    }
}
