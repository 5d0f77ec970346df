//! Layer streams: detect the compression by magic bytes (media types lie), decompress,
//! and verify digests while the bytes go by, failing at EOF on a mismatch.

use std::io::{self, Cursor, Read};

use sha2::{Digest as _, Sha256};

use crate::reference::Digest;

/// gzip member header: ID1 ID2.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// zstd frame magic 0xFD2FB528, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd skippable frames have magic 0x184D2A50..=0x184D2A5F, little-endian.
const ZSTD_SKIPPABLE_MAGIC_HIGH: [u8; 3] = [0x2a, 0x4d, 0x18];

/// How a layer blob is compressed, as detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, possibly several concatenated members.
    Gzip,
    /// zstd, possibly several frames and skippable frames.
    Zstd,
    /// A format banger does not read, by name (`xz`, `bzip2`, `zip`).
    Unsupported(&'static str),
}

/// Magic bytes of formats people hand banger by mistake; each is named in
/// the error rather than reported as a truncated tar.
const UNSUPPORTED_MAGIC: [(&[u8], &str); 4] = [
    (&[0xfd, b'7', b'z', b'X'], "xz"),
    (&[b'P', b'K', 0x03, 0x04], "zip"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    (b"BZh", "bzip2"),
];

impl Compression {
    /// Detects the compression from a stream's first (up to) four bytes.
    pub fn sniff(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(&ZSTD_MAGIC)
            || (prefix.len() >= 4
                && prefix[0] & 0xf0 == 0x50
                && prefix[1..4] == ZSTD_SKIPPABLE_MAGIC_HIGH)
        {
            Compression::Zstd
        } else if let Some((_, name)) = UNSUPPORTED_MAGIC.iter().find(|(magic, name)| {
            // bzip2's "BZh" is followed by the block size digit 1-9.
            prefix.starts_with(magic)
                && (*name != "bzip2" || prefix.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)))
        }) {
            Compression::Unsupported(name)
        } else {
            Compression::None
        }
    }
}

/// Reads up to `buf.len()` bytes, stopping early only at EOF.
fn read_prefix(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Turns a raw layer blob into its tar stream: sniffs the compression and wraps the
/// matching decoder. If `diff_id` is given, the decompressed bytes are hashed and the
/// reader fails at EOF unless they match. `name` labels errors (e.g. `layer 2 (sha256:…)`).
pub fn decompress(
    raw: Box<dyn Read + Send>,
    diff_id: Option<Digest>,
    name: &str,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(verify_diff_id(decoder(raw, name)?.0, diff_id, name))
}

/// Sniffs the compression of a raw layer blob and wraps the matching decoder,
/// without checking the result's digest; returns it with the compression
/// found. `name` labels errors.
pub fn decoder(
    mut raw: Box<dyn Read + Send>,
    name: &str,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let mut prefix = [0u8; 4];
    let len = read_prefix(&mut raw, &mut prefix)?;
    let compression = Compression::sniff(&prefix[..len]);
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(prefix[..len].to_vec()).chain(raw));
    let label = name.to_string();
    let stream: Box<dyn Read + Send> = match compression {
        Compression::None => whole,
        Compression::Gzip => Box::new(Labelled {
            inner: flate2::read::MultiGzDecoder::new(whole),
            layer: label,
            format: "gzip",
        }),
        Compression::Zstd => Box::new(Labelled {
            inner: zstd::stream::read::Decoder::new(whole)?,
            layer: label,
            format: "zstd",
        }),
        Compression::Unsupported(format) => {
            return Err(StreamError::Unsupported { format }.into_io(io::ErrorKind::InvalidData))
        }
    };
    Ok((stream, compression))
}

/// Wraps a layer's tar stream so that it fails at EOF unless its bytes hash
/// to `diff_id`; with `None`, returns it as is. `name` labels errors.
pub fn verify_diff_id<'a>(
    tar: Box<dyn Read + Send + 'a>,
    diff_id: Option<Digest>,
    name: &str,
) -> Box<dyn Read + Send + 'a> {
    match diff_id {
        Some(expected) => Box::new(VerifyingReader::new(
            tar,
            expected,
            None,
            format!("{name}: diff_id (digest of the uncompressed tar)"),
        )),
        None => tar,
    }
}

/// A layer stream's own failure: a corrupt or truncated blob, or a digest
/// mismatch. Each names its layer and stream. It travels through the readers
/// inside an [`io::Error`] ([`Read`] allows no other error) and is taken back
/// out with [`StreamError::from_io`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The decompressor failed: the blob is corrupt or truncated.
    #[error("{layer}: {format} stream")]
    Decode {
        /// The layer, e.g. `layer 2 (sha256:abcdef012345)`.
        layer: String,
        /// `gzip` or `zstd`.
        format: &'static str,
        /// The decompressor's error.
        #[source]
        source: io::Error,
    },
    /// The data is compressed in a format banger does not read.
    #[error("the data is {format}-compressed; banger reads tars that are plain, gzip or zstd: decompress it first")]
    Unsupported {
        /// `xz`, `zip`, `lz4` or `bzip2`.
        format: &'static str,
    },
    /// The stream ended before the size its descriptor declares.
    #[error("{what}: expected {expected} bytes, got {got} (truncated or corrupt; delete the cached blob and pull again)")]
    Short {
        /// The stream.
        what: String,
        /// The declared size.
        expected: u64,
        /// The bytes there were.
        got: u64,
    },
    /// The stream went on past the size its descriptor declares.
    #[error("{what}: longer than the {size} bytes its descriptor declares")]
    Long {
        /// The stream.
        what: String,
        /// The declared size.
        size: u64,
    },
    /// The bytes do not hash to the digest they were named by.
    #[error("{what}: digest mismatch: expected {expected}, got {actual} (the image is corrupt or was tampered with)")]
    DigestMismatch {
        /// The stream.
        what: String,
        /// The digest expected.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
}

impl StreamError {
    fn into_io(self, kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, self)
    }

    /// The layer stream's failure that `error` carries, or `error` itself
    /// when it comes from elsewhere (whatever consumed the stream).
    pub fn from_io(error: io::Error) -> Result<StreamError, io::Error> {
        if !is_stream_error(&error) {
            return Err(error);
        }
        let kind = error.kind();
        match error
            .into_inner()
            .map(|inner| inner.downcast::<StreamError>())
        {
            Some(Ok(stream)) => Ok(*stream),
            Some(Err(other)) => Err(io::Error::new(kind, other)),
            None => Err(io::Error::from(kind)),
        }
    }
}

/// Whether `error` carries a layer stream's own failure.
fn is_stream_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<StreamError>())
}

/// Adds context to a decoder's errors so a corrupt stream names its layer.
struct Labelled<R> {
    inner: R,
    layer: String,
    format: &'static str,
}

impl<R: Read> Read for Labelled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            // The stored blob's verifier has already said which layer it is.
            if is_stream_error(&e) {
                e
            } else {
                let kind = e.kind();
                StreamError::Decode {
                    layer: self.layer.clone(),
                    format: self.format,
                    source: e,
                }
                .into_io(kind)
            }
        })
    }
}

/// Hashes everything read through it; at EOF checks the sha256 (and optionally the
/// byte count) and returns `InvalidData` instead of EOF on a mismatch. A stream longer
/// than the expected size fails as soon as it overruns.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    expected_size: Option<u64>,
    seen: u64,
    what: String,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`; `what` names the stream in error messages.
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>, what: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            expected_size,
            seen: 0,
            what,
            verified: false,
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(size) = self.expected_size {
            if self.seen != size {
                return Err(StreamError::Short {
                    what: self.what.clone(),
                    expected: size,
                    got: self.seen,
                }
                .into_io(io::ErrorKind::InvalidData));
            }
        }
        let actual = Digest::from_sha256_bytes(&self.hasher.clone().finalize());
        if actual != self.expected {
            return Err(StreamError::DigestMismatch {
                what: self.what.clone(),
                expected: self.expected.clone(),
                actual,
            }
            .into_io(io::ErrorKind::InvalidData));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        self.seen += n as u64;
        if let Some(size) = self.expected_size {
            if self.seen > size {
                return Err(StreamError::Long {
                    what: self.what.clone(),
                    size,
                }
                .into_io(io::ErrorKind::InvalidData));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn case_34_multi_member_gzip_is_read_to_the_end() {
        let mut blob = gzip(b"hello ");
        blob.extend(gzip(b"world"));
        let mut r = decompress(
            Box::new(Cursor::new(blob)),
            Some(Digest::of(b"hello world")),
            "l",
        )
        .unwrap();
        assert_eq!(read_all(&mut r).unwrap(), b"hello world");
    }

    #[test]
    fn case_34_zstd_with_skippable_frames() {
        let mut blob = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9];
        blob.extend(zstd::encode_all(&b"abc"[..], 3).unwrap());
        blob.extend([0x5f, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 7]);
        blob.extend(zstd::encode_all(&b"def"[..], 3).unwrap());
        assert_eq!(Compression::sniff(&blob[..4]), Compression::Zstd);
        let mut r = decompress(
            Box::new(Cursor::new(blob)),
            Some(Digest::of(b"abcdef")),
            "l",
        )
        .unwrap();
        assert_eq!(read_all(&mut r).unwrap(), b"abcdef");
    }

    #[test]
    fn case_34_plain_and_tiny_streams() {
        for data in [&b""[..], b"x", b"plain tar bytes"] {
            let mut r = decompress(
                Box::new(Cursor::new(data.to_vec())),
                Some(Digest::of(data)),
                "l",
            )
            .unwrap();
            assert_eq!(read_all(&mut r).unwrap(), data);
        }
    }

    #[test]
    fn case_35_diff_id_mismatch_fails_at_eof_naming_the_layer() {
        let mut r = decompress(
            Box::new(Cursor::new(gzip(b"content"))),
            Some(Digest::of(b"other")),
            "layer 3 (sha256:abc)",
        )
        .unwrap();
        let err = read_all(&mut r).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("layer 3 (sha256:abc)"), "{err}");
        assert!(err.to_string().contains("diff_id"), "{err}");
    }

    #[test]
    fn case_35_truncated_gzip_and_zstd_are_errors() {
        let data = vec![7u8; 100_000];
        let gz = gzip(&data);
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for blob in [&gz[..gz.len() / 2], &zs[..zs.len() / 2]] {
            let mut r = decompress(
                Box::new(Cursor::new(blob.to_vec())),
                Some(Digest::of(&data)),
                "l",
            )
            .unwrap();
            assert!(read_all(&mut r).is_err());
        }
    }

    #[test]
    fn case_35_size_mismatch_is_an_error() {
        let data = b"0123456789".to_vec();
        let digest = Digest::of(&data);
        let mut long = VerifyingReader::new(
            Cursor::new(data.clone()),
            digest.clone(),
            Some(5),
            "b".into(),
        );
        assert!(read_all(&mut long).is_err());
        let mut short = VerifyingReader::new(
            Cursor::new(data.clone()),
            digest.clone(),
            Some(11),
            "b".into(),
        );
        assert!(read_all(&mut short).is_err());
        let mut exact =
            VerifyingReader::new(Cursor::new(data.clone()), digest, Some(10), "b".into());
        assert_eq!(read_all(&mut exact).unwrap(), data);
    }
}
