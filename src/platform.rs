//! Platforms (`linux/amd64`, `linux/arm64/v8`) and matching them against the
//! entries of an image index, with the usual architecture aliases.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// An OS/architecture/variant triple as found in image indexes and configs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, … (GOARCH names).
    pub architecture: String,
    /// `v8`, `v7`, …, when the architecture has variants.
    #[serde(default)]
    pub variant: Option<String>,
}

impl Default for Platform {
    /// `linux/amd64`: what microVMs run.
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// The same platform with architecture aliases folded to GOARCH names
    /// (`x86_64` → `amd64`, `aarch64` → `arm64`) and the default variants made
    /// explicit for comparison (`arm64` is `v8`).
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_ref().map(|v| v.to_ascii_lowercase());
        let (architecture, variant) = match arch.as_str() {
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant),
            "aarch64" | "arm64" => (
                "arm64".to_string(),
                Some(variant.unwrap_or_else(|| "v8".into())),
            ),
            "armhf" => ("arm".to_string(), Some("v7".into())),
            "armel" => ("arm".to_string(), Some("v6".into())),
            "arm" => (
                "arm".to_string(),
                Some(variant.unwrap_or_else(|| "v7".into())),
            ),
            "i386" | "i686" | "x86" => ("386".to_string(), variant),
            _ => (arch, variant),
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// True if an index entry for `offered` can run where `self` is wanted. A wanted
    /// platform without a variant accepts any variant of its architecture.
    pub fn matches(&self, offered: &Platform) -> bool {
        let wanted = self.normalized();
        let offered = offered.normalized();
        wanted.os == offered.os
            && wanted.architecture == offered.architecture
            && (self.variant.is_none() || wanted.variant == offered.variant)
    }
}

/// Why a platform string could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64")]
pub struct PlatformError(pub String);

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let nonempty = parts.iter().all(|p| !p.is_empty());
        match parts.as_slice() {
            [os, arch] if nonempty => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if nonempty => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn aliases_and_variants() {
        assert!(p("linux/amd64").matches(&p("linux/x86_64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/aarch64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm64").matches(&p("linux/aarch64")));
        assert!(p("linux/arm").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
    }
}
