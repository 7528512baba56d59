//! Continue tokens, in the same shape as the Kubernetes API server's:
//! base64 of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":"<next key>"}`.
//! The token is opaque to clients; it is only decoded here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Revision};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision of the first page; every page is read at it.
    pub revision: Revision,
    /// The first key of the next page.
    pub start: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: String,
    rv: Revision,
    start: String,
}

const VERSION: &str = "meta.k8s.io/v1";

impl ContinueToken {
    pub fn encode(&self) -> String {
        let wire = Wire { v: VERSION.to_owned(), rv: self.revision, start: self.start.clone() };
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidContinue { reason: reason.to_owned() };
        let json = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad("not base64"))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| bad("not a continue token"))?;
        if wire.v != VERSION {
            return Err(bad("unknown version"));
        }
        if wire.rv <= 0 {
            return Err(bad("revision must be positive"));
        }
        if !wire.start.starts_with('/') {
            return Err(bad("start key must be absolute"));
        }
        Ok(ContinueToken { revision: wire.rv, start: wire.start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ContinueToken { revision: 42, start: "/registry/pods/default/b\u{0}".to_owned() };
        assert_eq!(ContinueToken::decode(&t.encode()).ok(), Some(t));
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in ["", "!!!", "e30", "eyJ2IjoieCIsInJ2IjoxLCJzdGFydCI6Ii9hIn0"] {
            assert!(matches!(ContinueToken::decode(bad), Err(Error::InvalidContinue { .. })), "{bad}");
        }
    }
}
