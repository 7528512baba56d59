//! Content digests: the `sha256:<hex>` names that blobs, manifests and layers go by.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A SHA-256 content digest. Only sha256 is supported because it is the only algorithm that
/// registries, `docker save` and OCI layouts use in practice; anything else is rejected when
/// parsed rather than carried around unverifiable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    hex: String,
}

/// A string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {0:?}: want sha256:<64 lowercase hex digits>")]
pub struct DigestError(pub String);

impl Digest {
    /// The digest of a byte string held in memory.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        hasher.finish()
    }

    /// Parses bare hex, as blob file names and image IDs are written.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if is_sha256_hex(hex) { Ok(Digest { hex: hex.to_string() }) } else { Err(DigestError(hex.to_string())) }
    }

    /// The 64 hex digits without the algorithm, as used for file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// Whether `s` is exactly 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_sha256_hex(hex) => Ok(Digest { hex: hex.to_string() }),
            _ => Err(DigestError(s.to_string())),
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(s: String) -> Result<Digest, DigestError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.to_string()
    }
}

/// An incremental SHA-256 that also counts bytes, so one pass over a stream yields both the
/// digest and the size that descriptors are checked against.
pub(crate) struct Hasher {
    context: ring::digest::Context,
    size: u64,
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher { context: ring::digest::Context::new(&ring::digest::SHA256), size: 0 }
    }
}

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn finish(self) -> Digest {
        let hex = self.context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Digest { hex }
    }
}

/// A writer that hashes everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, hasher: Hasher::default() }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        let size = self.hasher.size();
        (self.inner, self.hasher.finish(), size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a whole stream, returning its digest and length.
pub(crate) fn digest_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let size = hasher.size();
    Ok((hasher.finish(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        let digest = Digest::of_bytes(b"");
        assert_eq!(digest.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(digest_reader(&b""[..]).expect("reading a slice cannot fail"), (digest, 0));
    }

    #[test]
    fn parsing_rejects_other_algorithms_and_uppercase() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(format!("sha256:{hex}").parse::<Digest>().is_ok());
        assert!(format!("sha512:{hex}").parse::<Digest>().is_err());
        assert!(format!("sha256:{}", hex.to_uppercase()).parse::<Digest>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(Digest::from_hex(hex).is_ok());
    }

    #[test]
    fn serde_uses_the_prefixed_string() {
        let digest = Digest::of_bytes(b"x");
        let json = serde_json::to_string(&digest).expect("a digest serializes");
        assert_eq!(json, format!("\"{digest}\""));
        let back: Digest = serde_json::from_str(&json).expect("a digest deserializes");
        assert_eq!(back, digest);
        assert!(serde_json::from_str::<Digest>("\"md5:00\"").is_err());
    }
}
