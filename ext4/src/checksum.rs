//! ext4's crc32c as the kernel computes it (`ext4_chksum`).

/// CRC-32C (Castagnoli) run from register value `seed`, with no pre- or
/// post-inversion: `ext4_chksum(seed, a ‖ b) == ext4_chksum(ext4_chksum(seed, a), b)`.
pub fn ext4_chksum(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The checksum seed of a filesystem with `uuid`, used by every metadata
/// checksum except the superblock's own.
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    ext4_chksum(!0, uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_kernel_test_vector() {
        assert_eq!(ext4_chksum(!0, b"123456789"), 0x1CF9_6D7C);
    }

    #[test]
    fn chains() {
        let whole = ext4_chksum(7, b"hello world");
        assert_eq!(ext4_chksum(ext4_chksum(7, b"hello "), b"world"), whole);
    }
}
