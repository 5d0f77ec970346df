//! Names of images and kernels in the store: validated, and derived from image
//! references when the user gives none.

use crate::reference::Reference;

/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong, phrased so the user can fix it.
    pub reason: String,
}

/// Checks a store name: 1 to 64 of `[A-Za-z0-9._-]`, starting with a letter or
/// digit (so never `.`, `..` or a hidden staging name), no slashes.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let bad = |reason: &str| {
        Err(NameError {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("use at most 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("start it with a letter or digit");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!(
            "{c:?} is not allowed; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The default name for an image pulled from `reference`: the last path component
/// of its repository and its tag (`docker.io/library/debian:bookworm` →
/// `debian-bookworm`, `ghcr.io/myorg/devimg:v2` → `devimg-v2`), or the first 12 hex
/// digits of its digest. Characters a name cannot hold become `-`.
pub fn derive_name(reference: &Reference) -> String {
    let repo = reference.repository();
    let base = repo.rsplit('/').next().unwrap_or(repo);
    let suffix = match (reference.tag(), reference.digest()) {
        (Some(tag), _) => tag.to_string(),
        (None, Some(digest)) => digest.hex()[..12].to_string(),
        (None, None) => "latest".to_string(),
    };
    sanitize(&format!("{base}-{suffix}"))
}

/// The default name for a non-registry source (`oci:DIR:TAG`, `docker-archive:F`):
/// its file name and tag, sanitized.
pub fn derive_name_from_path(path: &str, tag: Option<&str>) -> String {
    let path = path.trim_end_matches('/');
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base
        .strip_suffix(".tar")
        .or_else(|| base.strip_suffix(".tar.gz"))
        .unwrap_or(base);
    match tag {
        Some(tag) => sanitize(&format!("{base}-{tag}")),
        None => sanitize(base),
    }
}

fn sanitize(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut name: String = trimmed.chars().take(MAX_NAME_LEN).collect();
    if name.is_empty() {
        name.push_str("image");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(r: &str) -> String {
        derive_name(&r.parse().unwrap())
    }

    #[test]
    fn derived_names() {
        assert_eq!(
            derive("docker.io/library/debian:bookworm"),
            "debian-bookworm"
        );
        assert_eq!(derive("ghcr.io/myorg/devimg:v2"), "devimg-v2");
        assert_eq!(derive("alpine"), "alpine-latest");
        assert_eq!(derive("localhost:5000/a/b:1.2"), "b-1.2");
        let digest = format!("quay.io/x/y@sha256:{}", "ab".repeat(32));
        assert_eq!(derive(&digest), "y-abababababab");
        assert_eq!(derive_name_from_path("/tmp/lay/", Some("v1")), "lay-v1");
        assert_eq!(derive_name_from_path("./.hidden.tar", None), "hidden");
        for name in ["debian-bookworm", "devimg-v2", "b-1.2", "y-abababababab"] {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn invalid_names() {
        for bad in ["", ".x", "..", "-x", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_name(&"a".repeat(64)).unwrap();
    }
}
