//! What makes the same image give the same bytes: the time banger writes for
//! what it creates, and the filesystem's UUID and hash seed.

use sha2::{Digest as _, Sha256};

use crate::ext4::tree::Timestamp;
use crate::source::ResolvedImage;

/// The time banger writes for what it creates: `SOURCE_DATE_EPOCH` when
/// set, else the image's creation time, else the epoch.
pub(super) fn creation_time(image: &ResolvedImage, source_date_epoch: Option<i64>) -> Timestamp {
    let from_config = image
        .config
        .created
        .as_deref()
        .and_then(parse_rfc3339_seconds);
    Timestamp::from_secs(source_date_epoch.or(from_config).unwrap_or(0))
}

/// Seconds of an RFC 3339 time such as `2024-05-01T12:34:56.789Z`.
fn parse_rfc3339_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.get(..8)?.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let offset = match time
        .get(8..)
        .map(|rest| rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit()))
    {
        Some(zone) if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let mi: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + mi * 60)
        }
        _ => 0,
    };
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// UUID and directory hash seed, derived from the image's content (never
/// from where it was read) so that the same image always gives the same
/// bytes and different images different UUIDs.
pub(super) struct FilesystemIds {
    pub(super) uuid: [u8; 16],
    pub(super) hash_seed: [u8; 16],
}

impl FilesystemIds {
    /// From the manifest digest, else the layers' digests, with
    /// `content_digests` (the XXH3-128 hash of each layer that has no digest
    /// of its own, in order) standing in for the missing ones.
    pub(super) fn derive(image: &ResolvedImage, content_digests: &[impl AsRef<[u8]>]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"banger rootfs ids\0");
        match &image.manifest_digest {
            Some(digest) => hasher.update(digest.to_string().as_bytes()),
            None => {
                let mut content = content_digests.iter();
                for layer in &image.layers {
                    match layer.digest.as_ref().or(layer.diff_id.as_ref()) {
                        Some(d) => hasher.update(d.to_string().as_bytes()),
                        None => {
                            if let Some(hash) = content.next() {
                                hasher.update(b"xxh3-128:");
                                hasher.update(hex::encode(hash).as_bytes());
                            }
                        }
                    }
                }
            }
        }
        let hash = hasher.finalize();
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&hash[..16]);
        // Mark it as an RFC 4122 name-based (version 8, custom) UUID.
        uuid[6] = (uuid[6] & 0x0F) | 0x80;
        uuid[8] = (uuid[8] & 0x3F) | 0x80;
        let mut hash_seed = [0u8; 16];
        hash_seed.copy_from_slice(&hash[16..32]);
        Self { uuid, hash_seed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_seconds("2024-05-01T12:34:56.789Z"),
            Some(1_714_566_896)
        );
        assert_eq!(
            parse_rfc3339_seconds("2024-05-01T14:34:56+02:00"),
            Some(1_714_566_896)
        );
        assert_eq!(parse_rfc3339_seconds("garbage"), None);
    }
}
