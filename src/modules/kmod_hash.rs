//! The iteration order of kmod's hash table (`shared/hash.c`).
//!
//! depmod writes `modules.symbols` by walking its symbol hash table, and
//! leaves modules that `modules.order` does not list in the order of its
//! module-name hash table. Reproducing those files byte for byte therefore
//! needs kmod's hash function and table layout: entries are visited bucket
//! by bucket (`hash & (buckets - 1)`), and by `strcmp` order within a bucket.

/// Buckets of depmod's module-name table (`hash_new(512, ...)`).
pub const MODULE_BUCKETS: u32 = 512;
/// Buckets of depmod's symbol table (`hash_new(2048, ...)`).
pub const SYMBOL_BUCKETS: u32 = 2048;

/// Paul Hsieh's SuperFastHash as kmod implements it: 16-bit reads are
/// little-endian, and single bytes are C `char`, signed on x86 and read so
/// here (they only matter for non-ASCII names).
pub fn superfast(key: &[u8]) -> u32 {
    let byte = |b: u8| b as i8 as i32 as u32;
    let half = |k: &[u8]| u32::from(u16::from_le_bytes([k[0], k[1]]));
    // kmod takes `unsigned int len`: names are far shorter than 4 GiB.
    let mut hash = key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for k in &mut chunks {
        hash = hash.wrapping_add(half(k));
        let tmp = (half(&k[2..]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            hash = hash.wrapping_add(half(&[a, b]));
            hash ^= hash << 16;
            hash ^= byte(c) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        [a, b] => {
            hash = hash.wrapping_add(half(&[a, b]));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        [a] => {
            hash = hash.wrapping_add(byte(a));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// Sorts `items` into the order kmod's hash table of `buckets` buckets
/// (a power of two) iterates their keys.
pub fn sort_in_table_order<T, K: AsRef<[u8]>>(
    items: &mut [T],
    buckets: u32,
    key: impl Fn(&T) -> K,
) {
    items.sort_by_cached_key(|item| {
        let k = key(item);
        let k = k.as_ref();
        (superfast(k) & (buckets - 1), k.to_vec())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_algorithm_on_every_tail_length() {
        // Values printed by kmod's own hash_superfast (shared/hash.c of
        // v30), compiled with gcc on x86-64: every tail length, a longer
        // name, and non-ASCII bytes (signed `char`).
        let expected: [(&[u8], u32); 9] = [
            (b"", 0),
            (b"a", 0x115ea782),
            (b"ab", 0x516b8b44),
            (b"abc", 0xd2be198a),
            (b"abcd", 0xdad8b8db),
            (b"virtio_net", 0x0e6a7042),
            (b"net_failover_create", 0x461e2016),
            (b"ab\xe9", 0xb4dfd4b5),
            (b"\xe9", 0x69ea06c0),
        ];
        for (key, value) in expected {
            assert_eq!(superfast(key), value, "{:?}", String::from_utf8_lossy(key));
        }
    }
}
