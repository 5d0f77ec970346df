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

/// The seed of one inode's checksums (the kernel's `ei->i_csum_seed`): the
/// filesystem seed run over the inode number and generation. The inode's own
/// checksum, its extent tree blocks and its directory blocks start from it.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let seed = ext4_chksum(fs_seed, &ino.to_le_bytes());
    ext4_chksum(seed, &generation.to_le_bytes())
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
