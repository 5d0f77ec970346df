//! Image references (`alpine`, `localhost:5000/x:tag`, `host/a/b@sha256:…`) parsed
//! and normalised the way docker does, plus the sha256 [`Digest`] type.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The registry that short names such as `alpine` refer to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Tag used when a reference names neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";
/// Longest tag the distribution spec allows.
const MAX_TAG_LEN: usize = 128;

/// Why a reference or digest could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it, phrased so the user can fix it.
    pub reason: String,
}

fn invalid(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A content digest. Only `sha256` is supported: it is what every registry and
/// image layout in practice uses, and what the blob cache is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_sha256_bytes(&sha2::Sha256::digest(bytes))
    }

    /// Wraps a finished sha256 hash.
    pub fn from_sha256_bytes(bytes: &[u8]) -> Self {
        Digest {
            hex: hex::encode(bytes),
        }
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for messages: `sha256:` and the first 12 hex characters.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(invalid(s, "a digest looks like sha256:<64 hex digits>"));
        };
        if algorithm != "sha256" {
            return Err(invalid(
                s,
                format!("digest algorithm {algorithm:?} is not supported (only sha256 is)"),
            ));
        }
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(invalid(
                s,
                "a sha256 digest has exactly 64 lowercase hex digits",
            ));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A normalised image reference: registry, repository, and a tag and/or digest.
///
/// At least one of `tag` and `digest` is always present: a bare name gets `latest`.
/// When both are given the digest decides what is pulled, as in docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry as written (normalised): `docker.io`, `localhost:5000`, …
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) that serves the registry API: Docker Hub's differs from its name.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given (or `latest` when neither tag nor digest was).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if any, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// True if the registry host is a loopback address (`localhost`, `127.0.0.0/8`,
    /// `[::1]`), which docker talks to over plain HTTP.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True if `host` (optionally with `:port`) names the loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(invalid(input, "the reference is empty"));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| invalid(input, e.reason))?,
                ),
            ),
            None => (input, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else the ':' is a port).
        let (name, tag) = match name_and_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(input, tag)?;
        }
        let (registry, remainder) = split_registry(name);
        validate_registry(input, registry)?;
        let mut repository = remainder.to_string();
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        validate_repository(input, &repository)?;
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }
}

/// Splits off the registry like docker: the first component is a registry only if
/// it contains `.` or `:`, is `localhost`, or has uppercase letters.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            let registry = if first == "index.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (registry, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn validate_registry(input: &str, registry: &str) -> Result<(), ReferenceError> {
    let ok = !registry.is_empty()
        && registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("{registry:?} is not a valid registry host"),
        ))
    }
}

fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let mut bytes = tag.bytes();
    let ok = tag.len() <= MAX_TAG_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"),
        ))
    }
}

/// Each path component: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(input: &str, repository: &str) -> Result<(), ReferenceError> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            input,
            format!("repository name {repository:?} must be lowercase"),
        ));
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(invalid(
                input,
                format!(
                    "repository component {component:?} must be lowercase letters and digits, \
                     separated by '.', '_', '__' or '-'"
                ),
            ));
        }
    }
    Ok(())
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> Reference {
        match s.parse() {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn case_37_short_name_is_docker_hub_library_latest() {
        let r = parse("alpine");
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(
            parse("library/alpine:3.20").to_string(),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(
            parse("docker.io/alpine").to_string(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            parse("index.docker.io/alpine").to_string(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(parse("user/app:v1").to_string(), "docker.io/user/app:v1");
    }

    #[test]
    fn case_37_localhost_port_is_a_registry_not_a_tag() {
        let r = parse("localhost:5000/x");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "x");
        assert_eq!(r.tag(), Some("latest"));
        assert!(r.is_loopback());
        let r = parse("localhost/x:1");
        assert_eq!((r.registry(), r.tag()), ("localhost", Some("1")));
        assert!(parse("127.0.0.1:5000/a/b").is_loopback());
        assert!(parse("[::1]:5000/a").is_loopback());
        assert!(!parse("ghcr.io/a/b").is_loopback());
    }

    #[test]
    fn case_37_tag_and_digest_together() {
        let r = parse(&format!("host.example/a/b:tag@sha256:{HEX}"));
        assert_eq!(r.registry(), "host.example");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.digest().map(|d| d.hex()), Some(HEX));
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("host.example/a/b:tag@sha256:{HEX}"));
        let r = parse(&format!("alpine@sha256:{HEX}"));
        assert_eq!(r.tag(), None);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine@sha256:{HEX}")
        );
    }

    #[test]
    fn case_37_uppercase_repository_is_an_error() {
        let e = "Alpine".parse::<Reference>().unwrap_err();
        assert!(e.reason.contains("lowercase"), "{e}");
        let e = "ghcr.io/Owner/app".parse::<Reference>().unwrap_err();
        assert!(e.reason.contains("lowercase"), "{e}");
        // An uppercase first component is taken as a registry host, as docker does.
        assert_eq!(parse("MyHost/app").registry(), "MyHost");
    }

    #[test]
    fn case_37_bad_digests_are_errors() {
        for bad in [
            "alpine@sha256:abc".to_string(),
            format!("alpine@sha256:{}", HEX.to_uppercase()),
            format!("alpine@sha512:{HEX}"),
            format!("alpine@{HEX}"),
            format!("alpine@sha256:{HEX}0"),
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn case_37_other_malformed_references() {
        for bad in [
            "", "a//b", "-a", "a:", "a:-x", "a/b_", "a/b:ta g", "a/b..c", "a/b___c",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(parse("a/b__c-d--e.f").repository(), "a/b__c-d--e.f");
    }
}
