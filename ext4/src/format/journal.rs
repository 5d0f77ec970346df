//! The jbd2 journal superblock (`journal_superblock_t`), big-endian.

use zerocopy::big_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The first 1024 bytes of the journal's first block.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct JournalSuperblock {
    pub h_magic: U32,
    pub h_blocktype: U32,
    pub h_sequence: U32,
    pub s_blocksize: U32,
    pub s_maxlen: U32,
    pub s_first: U32,
    pub s_sequence: U32,
    pub s_start: U32,
    pub s_errno: U32,
    pub s_feature_compat: U32,
    pub s_feature_incompat: U32,
    pub s_feature_ro_compat: U32,
    pub s_uuid: [u8; 16],
    pub s_nr_users: U32,
    pub s_dynsuper: U32,
    pub s_max_transaction: U32,
    pub s_max_trans_data: U32,
    pub s_checksum_type: u8,
    pub s_padding2: [u8; 3],
    pub s_num_fc_blks: U32,
    pub s_head: U32,
    pub s_padding: [U32; 40],
    pub s_checksum: U32,
    pub s_users: [u8; 16 * 48],
}

const _: () = assert!(size_of::<JournalSuperblock>() == 1024);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn offsets_match_the_spec() {
        assert_eq!(offset_of!(JournalSuperblock, s_uuid), 0x30);
        assert_eq!(offset_of!(JournalSuperblock, s_nr_users), 0x40);
        assert_eq!(offset_of!(JournalSuperblock, s_checksum_type), 0x50);
        assert_eq!(offset_of!(JournalSuperblock, s_checksum), 0xFC);
        assert_eq!(offset_of!(JournalSuperblock, s_users), 0x100);
    }
}
