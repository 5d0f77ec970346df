//! The image and kernel catalogs: short names for curated sources.
//!
//! Both are small JSON documents compiled into the binary (`assets/catalog.json`,
//! `assets/kernel-catalog.json`) and replaceable by a file named in
//! `$BANGER_CATALOG` / `$BANGER_KERNEL_CATALOG`:
//!
//! ```json
//! {"version": 1,
//!  "images": {"debian-bookworm": {"source": "docker.io/library/debian:bookworm",
//!                                 "kernel": "linux-6.1", "description": "…"}}}
//! {"version": 1,
//!  "kernels": {"linux-6.1": {"source": "ghcr.io/…/kernels/linux:6.1", "description": "…"}}}
//! ```
//! An image entry's `source` is any `banger rootfs` source; its `kernel` is a kernel
//! reference (a local kernel or a kernel-catalog entry). A kernel entry's `source` is
//! a registry reference to a kernel artifact (docs/kernel-artifacts.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The image catalog compiled into the binary.
pub const EMBEDDED_IMAGES: &str = include_str!("../assets/catalog.json");
/// The kernel catalog compiled into the binary.
pub const EMBEDDED_KERNELS: &str = include_str!("../assets/kernel-catalog.json");
/// Environment variable naming a file that replaces the image catalog.
pub const IMAGES_ENV: &str = "BANGER_CATALOG";
/// Environment variable naming a file that replaces the kernel catalog.
pub const KERNELS_ENV: &str = "BANGER_KERNEL_CATALOG";
/// The catalog format version this build reads.
const VERSION: u32 = 1;

/// One image catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageEntry {
    /// The image source, as `banger rootfs` takes it.
    pub source: String,
    /// The kernel reference for images pulled from this entry.
    #[serde(default)]
    pub kernel: Option<String>,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
}

/// One kernel catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KernelEntry {
    /// Registry reference of the kernel artifact.
    pub source: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
}

/// The image catalog.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Catalog {
    /// Entries by name.
    #[serde(default)]
    pub images: BTreeMap<String, ImageEntry>,
}

/// The kernel catalog.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KernelCatalog {
    /// Entries by name.
    #[serde(default)]
    pub kernels: BTreeMap<String, KernelEntry>,
}

/// Why a catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The override file could not be read.
    #[error("reading the catalog {path} (named by ${env})")]
    Read {
        /// The file.
        path: PathBuf,
        /// The variable naming it.
        env: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The document is malformed.
    #[error("catalog {origin} is not valid: {reason}")]
    Invalid {
        /// The file, or "embedded".
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

fn load<T: for<'de> Deserialize<'de>>(
    embedded: &str,
    env: &'static str,
) -> Result<T, CatalogError> {
    let (text, origin) = match std::env::var_os(env).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                path: path.clone(),
                env,
                source,
            })?;
            (text, path.display().to_string())
        }
        None => (embedded.to_string(), "embedded".to_string()),
    };
    parse(&text, &origin)
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str, origin: &str) -> Result<T, CatalogError> {
    let invalid = |reason: String| CatalogError::Invalid {
        origin: origin.to_string(),
        reason,
    };
    let versioned: Versioned = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if versioned.version != VERSION {
        return Err(invalid(format!(
            "version {} is not supported (this banger reads version {VERSION})",
            versioned.version
        )));
    }
    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))
}

impl Catalog {
    /// The embedded catalog, or the file `$BANGER_CATALOG` names.
    pub fn load() -> Result<Self, CatalogError> {
        load(EMBEDDED_IMAGES, IMAGES_ENV)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&ImageEntry> {
        self.images.get(name)
    }
}

impl KernelCatalog {
    /// The embedded kernel catalog, or the file `$BANGER_KERNEL_CATALOG` names.
    pub fn load() -> Result<Self, CatalogError> {
        load(EMBEDDED_KERNELS, KERNELS_ENV)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&KernelEntry> {
        self.kernels.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogs_parse_and_agree() {
        let images: Catalog = parse(EMBEDDED_IMAGES, "embedded").unwrap();
        let kernels: KernelCatalog = parse(EMBEDDED_KERNELS, "embedded").unwrap();
        assert_eq!(
            images.get("debian-bookworm").unwrap().source,
            "docker.io/library/debian:bookworm"
        );
        assert_eq!(
            images.get("alpine-3.20").unwrap().source,
            "docker.io/library/alpine:3.20"
        );
        for (name, entry) in &images.images {
            crate::names::validate_name(name).unwrap();
            entry.source.parse::<crate::source::ImageSource>().unwrap();
            let kernel = entry.kernel.as_deref().unwrap();
            assert!(kernels.get(kernel).is_some(), "{name}: kernel {kernel}");
        }
        for entry in kernels.kernels.values() {
            entry.source.parse::<crate::reference::Reference>().unwrap();
        }
    }

    #[test]
    fn wrong_versions_are_refused() {
        let err = parse::<Catalog>(r#"{"version": 2, "images": {}}"#, "f").unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        assert!(parse::<Catalog>("{", "f").is_err());
    }
}
