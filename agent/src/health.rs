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

/// A request line, parsed (surrounding whitespace and case ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `health`: the facts of [`Health`].
    Health,
    /// `poweroff`: answer, then ask PID 1 to power the guest off.
    PowerOff,
    /// Anything else, trimmed.
    Unknown(String),
}

impl Request {
    /// Parses one request line.
    pub fn parse(line: &str) -> Self {
        let line = line.trim();
        if line.eq_ignore_ascii_case("health") {
            Self::Health
        } else if line.eq_ignore_ascii_case("poweroff") {
            Self::PowerOff
        } else {
            Self::Unknown(line.to_owned())
        }
    }

    /// The JSON answer (one line, no trailing newline). For `poweroff` it
    /// is `{"status":"powering-off"}`, sent before the guest goes down.
    pub fn answer(&self, probe: &Probe) -> String {
        match self {
            Self::Health => probe.read().to_json(),
            Self::PowerOff => "{\"status\":\"powering-off\"}".to_owned(),
            Self::Unknown(line) => {
                let mut out = String::from("{\"status\":\"error\",\"error\":");
                push_json_string(
                    &mut out,
                    &format!("unknown request {line:?}; send \"health\" or \"poweroff\""),
                );
                out.push('}');
                out
            }
        }
    }
}

/// Answers one request line: [`Request::parse`] then [`Request::answer`].
/// Answering never acts; the server powers off after sending the answer.
pub fn respond(request: &str, probe: &Probe) -> String {
    Request::parse(request).answer(probe)
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

    #[test]
    fn poweroff_is_parsed_and_answered_without_acting() {
        assert_eq!(Request::parse(" PowerOff\r"), Request::PowerOff);
        assert_eq!(Request::parse("health"), Request::Health);
        assert_eq!(Request::parse(" x "), Request::Unknown("x".into()));
        let value: serde_json::Value =
            serde_json::from_str(&respond("poweroff", &Probe::default())).unwrap();
        assert_eq!(value, serde_json::json!({"status": "powering-off"}));
    }
}
