//! GNU sparse maps: which byte ranges of a sparse file are stored in the
//! archive. Everything else is a hole.

use std::io::Read;
use std::ops::Range;

use super::error::TarError;
use super::pax::ascii_number;
use super::tar_header::BLOCK_SIZE;

/// Most map entries accepted for one file, so a hostile map cannot exhaust
/// memory (a real file with this many runs is already absurd).
pub(crate) const MAX_SPARSE_ENTRIES: usize = 1 << 20;

/// Checks a map of (offset, length) pairs against the file's real size and
/// the number of data bytes in the archive, and returns the data ranges
/// sorted, with empty runs dropped and adjacent ones merged.
pub(crate) fn data_ranges(
    pairs: &[(u64, u64)],
    real_size: u64,
    data_size: u64,
) -> Result<Vec<Range<u64>>, TarError> {
    let mut ranges: Vec<Range<u64>> = Vec::with_capacity(pairs.len());
    let mut stored: u64 = 0;
    for &(offset, len) in pairs {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= real_size)
            .ok_or_else(|| {
                bad(format!(
                    "run {offset}+{len} ends past the file size {real_size}"
                ))
            })?;
        if ranges.last().is_some_and(|last| offset < last.end) {
            return Err(bad(format!("run at {offset} overlaps or is out of order")));
        }
        stored += len;
        if len == 0 {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if last.end == offset => last.end = end,
            _ => ranges.push(offset..end),
        }
    }
    if stored != data_size {
        return Err(bad(format!(
            "map describes {stored} data bytes but the archive holds {data_size}"
        )));
    }
    Ok(ranges)
}

/// Pairs up a flat list of numbers from a pax sparse map.
pub(crate) fn pairs_from_flat(flat: &[u64]) -> Result<Vec<(u64, u64)>, TarError> {
    if !flat.len().is_multiple_of(2) {
        return Err(bad("odd number of values in GNU.sparse.map".into()));
    }
    if flat.len() / 2 > MAX_SPARSE_ENTRIES {
        return Err(bad("too many sparse runs".into()));
    }
    Ok(flat.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// Reads the format 1.0 map at the start of the entry's data: decimal
/// numbers each ending in a newline (a count, then offset/length pairs),
/// padded with zeros to a block boundary. Returns the pairs and how many
/// bytes of data the map took.
pub(crate) fn read_map_1_0(data: &mut dyn Read) -> Result<(Vec<(u64, u64)>, u64), TarError> {
    let mut block = [0u8; BLOCK_SIZE];
    let mut pos = BLOCK_SIZE; // forces a read of the first block
    let mut consumed: u64 = 0;
    let mut next_number = |data: &mut dyn Read| -> Result<u64, TarError> {
        let mut digits = Vec::new();
        loop {
            if pos == BLOCK_SIZE {
                data.read_exact(&mut block).map_err(map_read_error)?;
                consumed += BLOCK_SIZE as u64;
                pos = 0;
            }
            let b = block[pos];
            pos += 1;
            if b == b'\n' {
                return ascii_number(&digits)
                    .ok_or_else(|| bad("invalid number in the 1.0 map".into()));
            }
            if digits.len() >= 20 {
                return Err(bad("number too long in the 1.0 map".into()));
            }
            digits.push(b);
        }
    };
    let count = next_number(data)?;
    if count > MAX_SPARSE_ENTRIES as u64 {
        return Err(bad("too many sparse runs".into()));
    }
    let mut pairs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let offset = next_number(data)?;
        let len = next_number(data)?;
        pairs.push((offset, len));
    }
    // The rest of the current block is padding, already consumed.
    Ok((pairs, consumed))
}

fn map_read_error(e: std::io::Error) -> TarError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        TarError::Truncated
    } else {
        TarError::Io(e)
    }
}

fn bad(what: String) -> TarError {
    TarError::InvalidSparse(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_and_merged() {
        let r = data_ranges(&[(0, 10), (10, 5), (100, 0), (200, 1), (300, 0)], 300, 16).unwrap();
        assert_eq!(r, vec![0..15, 200..201]);
        assert!(data_ranges(&[(0, 10)], 5, 10).is_err());
        assert!(data_ranges(&[(10, 10), (5, 1)], 50, 11).is_err());
        assert!(data_ranges(&[(0, 10)], 50, 11).is_err());
        assert!(data_ranges(&[(u64::MAX, 2)], u64::MAX, 2).is_err());
    }

    #[test]
    fn map_1_0_is_read_from_whole_blocks() {
        let mut data = b"2\n0\n5\n4096\n3\n".to_vec();
        data.resize(BLOCK_SIZE, 0);
        data.extend_from_slice(b"hello");
        let mut reader = &data[..];
        let (pairs, consumed) = read_map_1_0(&mut reader).unwrap();
        assert_eq!(pairs, vec![(0, 5), (4096, 3)]);
        assert_eq!(consumed, BLOCK_SIZE as u64);
        assert_eq!(reader, b"hello");
        assert!(matches!(
            read_map_1_0(&mut &b"1\n0\n"[..]),
            Err(TarError::Truncated)
        ));
    }
}
