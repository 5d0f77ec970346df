//! Step 8, the pure part: what the image's OCI workload runs, as whom,
//! where and with which environment.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::accounts::{resolve_user, Group, Identity, Passwd, UserError};
use super::config::InitConfig;

/// docker's default `PATH` for an image without one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A workload ready to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The executable found for `argv[0]`.
    pub program: PathBuf,
    /// The arguments, `argv[0]` as the image gives it.
    pub argv: Vec<String>,
    /// The complete environment, in order.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub working_dir: PathBuf,
    /// Who it runs as.
    pub identity: Identity,
}

/// Why the workload cannot start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadError {
    /// The `User` does not resolve.
    User(UserError),
    /// `argv[0]` is not an executable file, on `PATH` or at its path.
    NotFound {
        /// `argv[0]`.
        name: String,
        /// The `PATH` searched.
        path: String,
    },
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(e) => write!(f, "{e}"),
            Self::NotFound { name, path } if name.contains('/') => {
                write!(f, "the workload executable {name} does not exist or is not executable (PATH={path})")
            }
            Self::NotFound { name, path } => {
                write!(f, "the workload executable {name:?} is not on PATH={path}")
            }
        }
    }
}

impl std::error::Error for WorkloadError {}

/// The environment: the image's `Env` exactly (a repeated key keeps its
/// first place and its last value), then `PATH`, `HOME`, `TERM=linux` and
/// `HOSTNAME` for those it does not set.
pub fn environment(image_env: &[String], home: &str, hostname: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for entry in image_env {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if key.is_empty() {
            continue;
        }
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => env.push((key.to_owned(), value.to_owned())),
        }
    }
    for (key, value) in [
        ("PATH", DEFAULT_PATH),
        ("HOME", home),
        ("TERM", "linux"),
        ("HOSTNAME", hostname),
    ] {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    env
}

/// Whether `path` is a regular file (after symlinks) with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` as `execvp` would with `path_var`: a name with a `/` is a
/// path (relative to `working_dir`); otherwise each `PATH` entry in turn
/// (an empty one is the working directory).
pub fn find_program(
    name: &str,
    path_var: &str,
    working_dir: &Path,
    executable: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = working_dir.join(name);
        return executable(&path).then_some(path);
    }
    path_var
        .split(':')
        .map(|dir| working_dir.join(dir).join(name))
        .find(|candidate| executable(candidate))
}

/// Resolves the workload of `config`: `Ok(None)` when `Entrypoint` and
/// `Cmd` are both empty.
pub fn resolve(
    config: &InitConfig,
    passwd: &[Passwd],
    groups: &[Group],
    hostname: &str,
    executable: impl Fn(&Path) -> bool,
) -> Result<Option<Workload>, WorkloadError> {
    let argv = config.argv();
    if argv.is_empty() {
        return Ok(None);
    }
    let identity = resolve_user(config.user.as_deref().unwrap_or(""), passwd, groups)
        .map_err(WorkloadError::User)?;
    let working_dir = match config.working_dir.as_deref() {
        None | Some("") => PathBuf::from("/"),
        Some(dir) => Path::new("/").join(dir),
    };
    let env = environment(&config.env, &identity.home, hostname);
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let program = find_program(&argv[0], path_var, &working_dir, executable).ok_or_else(|| {
        WorkloadError::NotFound {
            name: argv[0].clone(),
            path: path_var.to_owned(),
        }
    })?;
    Ok(Some(Workload {
        program,
        argv,
        env,
        working_dir,
        identity,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::accounts::{parse_group, parse_passwd};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_is_the_images_plus_defaults() {
        let image = vec![
            "PATH=/opt/bin:/bin".to_owned(),
            "A=1".into(),
            "B=x=y".into(),
            "A=2".into(),
            "EMPTY=".into(),
            "=bad".into(),
        ];
        assert_eq!(
            environment(&image, "/home/app", "vm1"),
            pairs(&[
                ("PATH", "/opt/bin:/bin"),
                ("A", "2"),
                ("B", "x=y"),
                ("EMPTY", ""),
                ("HOME", "/home/app"),
                ("TERM", "linux"),
                ("HOSTNAME", "vm1"),
            ])
        );
        let image = vec![
            "HOME=/srv".to_owned(),
            "TERM=xterm".into(),
            "HOSTNAME=fixed".into(),
        ];
        assert_eq!(
            environment(&image, "/root", "vm1"),
            pairs(&[
                ("HOME", "/srv"),
                ("TERM", "xterm"),
                ("HOSTNAME", "fixed"),
                ("PATH", DEFAULT_PATH)
            ])
        );
    }

    #[test]
    fn program_lookup() {
        let exists = |p: &Path| {
            [
                "/usr/bin/nginx",
                "/bin/sh",
                "/srv/app/run.sh",
                "/srv/app/tool",
            ]
            .iter()
            .any(|known| p == Path::new(known))
        };
        let wd = Path::new("/srv/app");
        assert_eq!(
            find_program("nginx", DEFAULT_PATH, wd, exists),
            Some("/usr/bin/nginx".into())
        );
        assert_eq!(
            find_program("sh", "/nope:/bin:/usr/bin", wd, exists),
            Some("/bin/sh".into())
        );
        assert_eq!(
            find_program("/bin/sh", "", wd, exists),
            Some("/bin/sh".into())
        );
        assert_eq!(
            find_program("./run.sh", DEFAULT_PATH, wd, exists),
            Some("/srv/app/./run.sh".into())
        );
        // An empty PATH entry is the working directory.
        assert_eq!(
            find_program("tool", "/bin:", wd, exists),
            Some("/srv/app/tool".into())
        );
        assert_eq!(find_program("tool", "/bin", wd, exists), None);
        assert_eq!(find_program("", "/bin", wd, exists), None);
    }

    #[test]
    fn a_whole_workload() {
        let passwd = parse_passwd(
            "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/var/cache/nginx:/sbin/nologin\n",
        );
        let groups = parse_group("nginx:x:101:\nwww:x:33:nginx\n");
        let config = InitConfig {
            vsock_port: 52,
            entrypoint: vec!["/docker-entrypoint.sh".into()],
            cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["NGINX_VERSION=1.27".into()],
            working_dir: Some("srv".into()),
            user: Some("nginx".into()),
        };
        let exists = |p: &Path| p == Path::new("/docker-entrypoint.sh");
        let workload = resolve(&config, &passwd, &groups, "vm1", exists)
            .unwrap()
            .unwrap();
        assert_eq!(workload.program, PathBuf::from("/docker-entrypoint.sh"));
        assert_eq!(
            workload.argv,
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        assert_eq!(workload.working_dir, PathBuf::from("/srv"));
        assert_eq!(
            workload.identity,
            Identity {
                uid: 101,
                gid: 101,
                groups: vec![33],
                home: "/var/cache/nginx".into()
            }
        );
        assert_eq!(
            workload.env,
            pairs(&[
                ("NGINX_VERSION", "1.27"),
                ("PATH", DEFAULT_PATH),
                ("HOME", "/var/cache/nginx"),
                ("TERM", "linux"),
                ("HOSTNAME", "vm1"),
            ])
        );
    }

    #[test]
    fn nothing_to_run_a_missing_binary_and_a_bad_user() {
        let config = InitConfig {
            vsock_port: 52,
            ..Default::default()
        };
        assert_eq!(resolve(&config, &[], &[], "vm", |_| true), Ok(None));
        let config = InitConfig {
            vsock_port: 52,
            cmd: vec!["redis-server".into()],
            env: vec!["PATH=/usr/local/bin".into()],
            ..Default::default()
        };
        let err = resolve(&config, &[], &[], "vm", |_| false).unwrap_err();
        assert_eq!(
            err,
            WorkloadError::NotFound {
                name: "redis-server".into(),
                path: "/usr/local/bin".into()
            }
        );
        assert!(
            err.to_string()
                .contains("\"redis-server\" is not on PATH=/usr/local/bin"),
            "{err}"
        );
        let config = InitConfig {
            user: Some("redis".into()),
            ..config
        };
        assert_eq!(
            resolve(&config, &[], &[], "vm", |_| true),
            Err(WorkloadError::User(UserError::NoUser("redis".into())))
        );
        // Numeric users need no passwd; the working directory defaults to /.
        let config = InitConfig {
            user: Some("1000:1000".into()),
            ..config
        };
        let workload = resolve(&config, &[], &[], "vm", |p| {
            p == Path::new("/usr/local/bin/redis-server")
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            workload.identity,
            Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![],
                home: "/".into()
            }
        );
        assert_eq!(workload.working_dir, PathBuf::from("/"));
    }
}
