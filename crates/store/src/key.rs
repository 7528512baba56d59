//! Key rules shared by every backend.

use crate::{Error, Result};

/// The longest key accepted. etcd has no separate key limit, but Kubernetes keys are
/// `/registry/<resource>/<namespace>/<name>`, far below this.
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks a key: absolute (`/`-prefixed), not a prefix (no trailing `/`), no empty segment,
/// no NUL or other control character, at most [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<()> {
    check_common(key)?;
    if key.ends_with('/') {
        return Err(invalid(key, "a key must not end with '/'"));
    }
    Ok(())
}

/// Checks a list or watch prefix: like a key, but it must end with `/`,
/// so that `/registry/pods` cannot match `/registry/podsecuritypolicies`.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    check_common(prefix)?;
    if !prefix.ends_with('/') {
        return Err(invalid(prefix, "a prefix must end with '/'"));
    }
    Ok(())
}

fn check_common(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    if !key.starts_with('/') {
        return Err(invalid(key, "must start with '/'"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(key, "longer than 1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid(key, "must not contain control characters"));
    }
    if key.contains("//") {
        return Err(invalid(key, "must not contain an empty segment"));
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(invalid(key, "must not contain '.' or '..' segments"));
    }
    Ok(())
}

fn invalid(key: &str, reason: &'static str) -> Error {
    // Truncate what we echo back: the key may be the oversized input itself.
    let shown: String = key.chars().take(128).collect();
    Error::InvalidKey { key: shown, reason }
}

/// The smallest string greater than every string that starts with `prefix`,
/// i.e. the exclusive end of the range `[prefix, prefix_end)`.
/// Valid prefixes end with `/`, so bumping the last byte stays within ASCII.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            // The bytes are ASCII up to here, because we only ever bump an ASCII byte.
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    // Only reachable for a prefix made of DEL characters, which validation rejects.
    String::from("\u{7f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("/registry/pods/default/a").is_ok());
        for bad in ["", "registry/a", "/a/", "/a//b", "/a/\0", "/a/../b", "/a/./b"] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be invalid");
        }
        assert!(validate_key(&format!("/{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("/registry/pods/").is_ok());
        assert!(validate_prefix("/").is_ok());
        assert!(validate_prefix("/registry/pods").is_err());
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
    }
}
