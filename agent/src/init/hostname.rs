//! The host name: from `ip=`'s hostname field, else `/etc/hostname`.

use std::fs;
use std::io;
use std::path::Path;

/// The name in an `/etc/hostname` file: its first line that is neither
/// empty nor a `#` comment, trimmed.
pub fn from_etc_hostname(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

/// The name to set: `ip=`'s field wins over `/etc/hostname`'s contents.
pub fn choose(from_ip: Option<&str>, etc_hostname: Option<&str>) -> Option<String> {
    match from_ip {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => etc_hostname.and_then(from_etc_hostname),
    }
}

/// Sets the host name through `ROOT/proc/sys/kernel/hostname` (or the
/// `sethostname` syscall when that file cannot be read and `root` is `/`).
/// `Ok(false)`: it already was `name`.
pub fn set(root: &Path, name: &str) -> io::Result<bool> {
    let file = root.join("proc/sys/kernel/hostname");
    match fs::read_to_string(&file) {
        Ok(current) if current.trim_end_matches('\n') == name => Ok(false),
        Ok(_) => fs::write(&file, format!("{name}\n")).map(|()| true),
        Err(_) if root == Path::new("/") => {
            // SAFETY: passes a valid buffer of the length given.
            let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(true)
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_hostname_and_precedence() {
        assert_eq!(
            from_etc_hostname("# comment\n\n  box1  \nother\n").as_deref(),
            Some("box1")
        );
        assert_eq!(from_etc_hostname("\n# only\n"), None);
        assert_eq!(choose(Some("vm1"), Some("box1\n")).as_deref(), Some("vm1"));
        assert_eq!(choose(Some(""), Some("box1\n")).as_deref(), Some("box1"));
        assert_eq!(choose(None, Some("box1")).as_deref(), Some("box1"));
        assert_eq!(choose(None, None), None);
    }

    #[test]
    fn set_writes_only_a_different_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proc/sys/kernel/hostname");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, "old\n").unwrap();
        assert!(set(dir.path(), "vm1").unwrap());
        assert_eq!(fs::read_to_string(&file).unwrap(), "vm1\n");
        assert!(!set(dir.path(), "vm1").unwrap());
        assert!(set(&dir.path().join("missing"), "x").is_err());
    }
}
