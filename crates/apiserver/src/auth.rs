//! Who is calling: client certificates and static bearer tokens, as upstream's x509 and token-file
//! authenticators read them.
//!
//! A client certificate must already have been verified by rustls against the cluster CA (the
//! configuration from [`crate::pki::Pki::server_config`] does that); this module only reads the
//! user out of it. Bearer tokens come from `tokens.csv`, which is re-read whenever it changes on
//! disk, so a token minted with [`crate::pki::mint_token`] works at once on a running server.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls_pki_types::CertificateDer;

use crate::pki::{PkiError, TOKENS};

/// The group every authenticated user is in, added as upstream's `AuthenticatedGroupAdder` does.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user, as upstream's `user.Info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Empty for certificate users, as upstream leaves it.
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    fn authenticated(name: String, uid: String, mut groups: Vec<String>) -> User {
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        User { name, uid, groups }
    }
}

/// One line of the token file.
#[derive(Clone, Debug)]
pub(crate) struct TokenEntry {
    pub token: String,
    pub user: User,
}

/// The token file's contents and the file's identity when they were read, to notice changes.
struct Tokens {
    entries: Vec<TokenEntry>,
    stamp: Option<(SystemTime, u64)>,
}

/// Authenticates requests by client certificate or bearer token.
pub struct Authenticator {
    tokens_path: PathBuf,
    tokens: RwLock<Tokens>,
}

impl std::fmt::Debug for Authenticator {
    /// Leaves out the tokens, so an `Authenticator` can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("tokens_path", &self.tokens_path).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over the credentials directory of [`crate::pki::Pki::ensure`].
    pub fn new(pki_dir: &Path) -> Result<Authenticator, PkiError> {
        Authenticator::from_token_file(&pki_dir.join(TOKENS))
    }

    /// An authenticator over one token file. A missing or malformed file is an error here, as it
    /// is for upstream's `--token-auth-file`, so a typo stops the server instead of locking
    /// everyone out.
    pub fn from_token_file(path: &Path) -> Result<Authenticator, PkiError> {
        let stamp = file_stamp(path);
        let entries = parse_token_file(path)?;
        Ok(Authenticator { tokens_path: path.to_path_buf(), tokens: RwLock::new(Tokens { entries, stamp }) })
    }

    /// Re-reads the token file now.
    pub fn reload(&self) -> Result<(), PkiError> {
        let stamp = file_stamp(&self.tokens_path);
        let entries = parse_token_file(&self.tokens_path)?;
        *self.tokens.write() = Tokens { entries, stamp };
        Ok(())
    }

    /// Re-reads the token file if its modification time or size changed. A file that became
    /// unreadable or malformed keeps the old tokens in force, because failing every request over
    /// a half-edited file would be worse than honouring the tokens it had a moment ago.
    fn refresh(&self) {
        let stamp = file_stamp(&self.tokens_path);
        if stamp == self.tokens.read().stamp {
            return;
        }
        match parse_token_file(&self.tokens_path) {
            Ok(entries) => *self.tokens.write() = Tokens { entries, stamp },
            Err(e) => tracing::warn!(error = %e, "keeping the previous tokens"),
        }
    }

    /// The user behind a request: the verified client certificate if there is one, else a bearer
    /// token, else `None` (answered with 401). `peer_certs` must come from a connection whose
    /// certificates rustls verified, as `ServerConnection::peer_certificates` returns them.
    pub fn authenticate(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
        authorization_header: Option<&str>,
    ) -> Option<User> {
        if let Some(user) = peer_certs.and_then(|certs| certs.first()).and_then(user_from_cert) {
            return Some(user);
        }
        let token = bearer_token(authorization_header?)?;
        self.authenticate_token(token)
    }

    /// The user a bearer token belongs to. Every entry is compared, in constant time per entry, so
    /// the time taken does not tell an attacker how much of a guess was right.
    pub fn authenticate_token(&self, token: &str) -> Option<User> {
        self.refresh();
        let tokens = self.tokens.read();
        let mut found = None;
        for entry in &tokens.entries {
            if constant_time_eq(entry.token.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(entry.user.clone());
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive, as in
/// upstream; anything else, or an empty token, is no token.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(char::is_whitespace))
        .then_some(token)
}

/// The user named by a client certificate: common name as user, organizations as groups, as
/// upstream's `CommonNameUserConversion`. A certificate without a common name names nobody.
pub fn user_from_cert(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?;
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(User::authenticated(name.to_string(), String::new(), groups))
}

/// Compares without stopping at the first difference. Only the length leaks, and tokens of one
/// deployment all have the same length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads upstream's static token file: `token,user,uid[,"group1,group2,..."]` per line, further
/// columns ignored, lines with an empty token skipped. Blank lines and `#` comments are skipped
/// too, which upstream's CSV reader would reject, because hand-edited files have them.
pub(crate) fn parse_token_file(path: &Path) -> Result<Vec<TokenEntry>, PkiError> {
    let text = fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_path_buf(), source })?;
    let mut entries: Vec<TokenEntry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let bad = |detail: String| PkiError::TokenFile { path: path.to_path_buf(), line: line_no, detail };
        let fields = split_csv_line(line).map_err(|e| bad(e.to_string()))?;
        let [token, name, uid, rest @ ..] = fields.as_slice() else {
            return Err(bad(format!("needs at least 3 columns (token, user name, user uid), found {}", fields.len())));
        };
        if token.is_empty() {
            tracing::warn!(path = %path.display(), line = line_no, "skipping an empty token");
            continue;
        }
        if entries.iter().any(|e| e.token == *token) {
            tracing::warn!(path = %path.display(), line = line_no, "duplicate token; the later line wins");
            entries.retain(|e| e.token != *token);
        }
        let groups = match rest.first() {
            Some(groups) if !groups.is_empty() => groups.split(',').map(str::to_string).collect(),
            _ => Vec::new(),
        };
        entries.push(TokenEntry { token: token.clone(), user: User::authenticated(name.clone(), uid.clone(), groups) });
    }
    Ok(entries)
}

/// Splits one CSV record: commas separate fields, a field that starts with `"` runs to the next
/// lone `"`, and `""` inside it is a quote. Spaces before a field are dropped, as Go's
/// `TrimLeadingSpace` does.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_like_go() {
        assert_eq!(split_csv_line(r#"t,u,i,"a,b""#), Ok(vec!["t".into(), "u".into(), "i".into(), "a,b".into()]));
        assert_eq!(split_csv_line("t,u,i"), Ok(vec!["t".into(), "u".into(), "i".into()]));
        assert_eq!(split_csv_line("t, u,\"x\"\"y\""), Ok(vec!["t".into(), "u".into(), "x\"y".into()]));
        assert_eq!(split_csv_line(",,"), Ok(vec![String::new(), String::new(), String::new()]));
        assert!(split_csv_line("t,\"u").is_err());
        assert!(split_csv_line("t,\"u\"x").is_err());
        assert!(split_csv_line("t,u\"x").is_err());
    }

    #[test]
    fn token_file_is_parsed_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.csv");
        fs::write(&path, "# comment\n\nabc,alice,1,\"g1,g2\"\r\n,skipped,2\nxyz,bob,3\nabc,carol,4\n").expect("write");
        let entries = parse_token_file(&path).expect("parse");
        let users: Vec<(&str, &str, Vec<&str>)> = entries
            .iter()
            .map(|e| (e.token.as_str(), e.user.name.as_str(), e.user.groups.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(users, vec![("xyz", "bob", vec![AUTHENTICATED_GROUP]), ("abc", "carol", vec![AUTHENTICATED_GROUP])]);

        fs::write(&path, "a,b,c\nshort,line\n").expect("write");
        let err = parse_token_file(&path).expect_err("two columns");
        assert!(matches!(err, PkiError::TokenFile { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("tokens.csv:2"), "{err}");
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token(""), None);
        assert_eq!(bearer_token("Bearer\u{e9} x"), None);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn garbage_certificates_name_nobody() {
        assert_eq!(user_from_cert(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01])), None);
        assert_eq!(user_from_cert(&CertificateDer::from(Vec::new())), None);
    }
}
