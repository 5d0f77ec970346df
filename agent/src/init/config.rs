//! `/etc/banger/init.json`: what banger tells banger-init at image-write
//! time: the agent's vsock port and the image's OCI workload.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where banger writes the file in the guest.
pub const INIT_CONFIG_PATH: &str = "/etc/banger/init.json";

/// The contents of [`INIT_CONFIG_PATH`], e.g.
///
/// ```json
/// {"vsock_port":52,"entrypoint":["/docker-entrypoint.sh"],"cmd":["nginx","-g","daemon off;"],
///  "env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
///  "working_dir":"/","user":"101:101"}
/// ```
///
/// Only `vsock_port` is required. The other fields are the image config's
/// `Entrypoint`, `Cmd`, `Env`, `WorkingDir` and `User`; a null or missing
/// one is empty. Unknown fields are ignored so an older banger-init reads a
/// newer file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitConfig {
    /// The vsock port `banger-vsock-agent --port` listens on.
    pub vsock_port: u32,
    /// The image's `Entrypoint`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// The image's `Cmd`: the arguments to the entrypoint, or the command
    /// itself without one.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// The image's `Env`: `KEY=VALUE` strings.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// The image's `WorkingDir`; `/` when empty or missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// The image's `User`: `uid`, `uid:gid`, `name` or `name:group`; root
    /// when empty or missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl InitConfig {
    /// Parses the JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON text banger writes (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings always serializes")
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_json(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The workload's argv: `Entrypoint` followed by `Cmd`, as docker runs
    /// them; empty when there is nothing to run.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_schema_round_trips() {
        let text = r#"{"vsock_port":52,"entrypoint":["/docker-entrypoint.sh"],"cmd":["nginx","-g","daemon off;"],"env":["A=1","PATH=/bin"],"working_dir":"/srv","user":"nginx:www"}"#;
        let config = InitConfig::from_json(text).unwrap();
        assert_eq!(
            config,
            InitConfig {
                vsock_port: 52,
                entrypoint: vec!["/docker-entrypoint.sh".into()],
                cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                env: vec!["A=1".into(), "PATH=/bin".into()],
                working_dir: Some("/srv".into()),
                user: Some("nginx:www".into()),
            }
        );
        assert_eq!(config.to_json(), text);
        assert_eq!(
            config.argv(),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
    }

    #[test]
    fn only_the_port_is_required() {
        let config = InitConfig::from_json(r#"{"vsock_port":1024}"#).unwrap();
        assert_eq!(
            config,
            InitConfig {
                vsock_port: 1024,
                ..Default::default()
            }
        );
        assert_eq!(config.to_json(), r#"{"vsock_port":1024}"#);
        assert!(config.argv().is_empty());
        let nulls = r#"{"vsock_port":52,"entrypoint":null,"cmd":null,"env":null,"working_dir":null,"user":null,"future":1}"#;
        assert_eq!(
            InitConfig::from_json(nulls).unwrap(),
            InitConfig {
                vsock_port: 52,
                ..Default::default()
            }
        );
        assert!(InitConfig::from_json(r#"{"cmd":["sh"]}"#).is_err());
        assert!(InitConfig::from_json(r#"{"vsock_port":-1}"#).is_err());
    }

    #[test]
    fn cmd_alone_without_entrypoint() {
        let config = InitConfig::from_json(r#"{"vsock_port":52,"cmd":["bash"]}"#).unwrap();
        assert_eq!(config.argv(), ["bash"]);
        let config =
            InitConfig::from_json(r#"{"vsock_port":52,"entrypoint":["tini","--"]}"#).unwrap();
        assert_eq!(config.argv(), ["tini", "--"]);
    }
}
