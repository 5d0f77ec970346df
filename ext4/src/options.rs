//! What a caller can choose about an image.

use crate::tree::Timestamp;

/// Largest image the default descriptor reservation supports: 4 TiB.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 40;

/// How to build an image.
#[derive(Clone, Debug)]
pub struct Options {
    /// Image size in bytes; `None` sizes it to 1.5 × the content, at least 1 GiB.
    pub size: Option<u64>,
    /// Filesystem UUID. Derive it from the input for reproducible images.
    pub uuid: [u8; 16],
    /// Seed of the directory hash. Derive it from the input too.
    pub hash_seed: [u8; 16],
    /// Time written for the filesystem itself and for what banger creates
    /// (lost+found, the journal): `SOURCE_DATE_EPOCH` for reproducible builds.
    pub timestamp: Timestamp,
    /// Volume label, at most 16 bytes.
    pub label: Vec<u8>,
    /// Largest size the image may reach; sets how many descriptor blocks are
    /// reserved after each superblock copy.
    pub max_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: None,
            uuid: *b"banger-ext4-uuid",
            hash_seed: *b"banger-dirhash-s",
            timestamp: Timestamp::default(),
            label: Vec::new(),
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}
