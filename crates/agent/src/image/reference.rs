//! Image references, normalized the way Docker and containerd do it, so that `nginx`,
//! `docker.io/nginx` and `docker.io/library/nginx:latest` all name the same image.

use std::fmt;

use super::digest::{Digest, is_sha256_hex};

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A fully qualified image reference: `domain/path[:tag][@digest]`.
///
/// Parsing fills in what Docker fills in: the `docker.io` domain, the `library/` prefix for
/// official images and, when neither tag nor digest is given, the `latest` tag. A reference
/// with a digest keeps the tag it was written with but is resolved by the digest alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference. The messages follow the ones Docker prints, since
/// they end up in pod status messages that users compare with real clusters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("couldn't parse image name \"{0}\": invalid reference format")]
    InvalidFormat(String),
    #[error("couldn't parse image name \"{0}\": invalid reference format: repository name must be lowercase")]
    Uppercase(String),
    #[error("couldn't parse image name \"{0}\": cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("couldn't parse image name \"{0}\": repository name must not be more than 255 characters")]
    NameTooLong(String),
    #[error("couldn't parse image name \"{0}\": only sha256 digests are supported")]
    UnsupportedDigest(String),
}

impl Reference {
    /// Parses and normalizes a reference as `docker pull` and the kubelet read one.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if is_sha256_hex(input) {
            return Err(ReferenceError::HexIdentifier(input.to_string()));
        }
        let invalid = || ReferenceError::InvalidFormat(input.to_string());
        let (domain, remainder) = split_domain(input);

        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((name_and_tag, digest)) => {
                let digest = match digest.parse::<Digest>() {
                    Ok(digest) => digest,
                    Err(_) if digest.contains(':') && !digest.starts_with("sha256:") => {
                        return Err(ReferenceError::UnsupportedDigest(input.to_string()));
                    }
                    Err(_) => return Err(invalid()),
                };
                (name_and_tag, Some(digest))
            }
            None => (remainder.as_str(), None),
        };
        // A colon after the last slash separates the tag; earlier colons would be a port, and
        // the domain (where ports live) has already been split off.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (&name_and_tag[..split], Some(&name_and_tag[split + 1..]))
            }
            None => (name_and_tag, None),
        };

        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase(input.to_string()));
        }
        if !is_valid_domain(&domain) || path.is_empty() || !path.split('/').all(is_valid_path_component) {
            return Err(invalid());
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong(input.to_string()));
        }
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(invalid());
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { domain, path: path.to_string(), tag, digest })
    }

    /// The registry host, e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, the repository name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path:tag`, the key the store indexes images by, or `None` for a reference that
    /// names its image by digest only.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|tag| format!("{}/{}:{}", self.domain, self.path, tag))
    }

    /// This reference with a different digest and without a tag: how an image found by tag is
    /// named when pinned.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { domain: self.domain.clone(), path: self.path.clone(), tag: None, digest: Some(digest) }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits off the registry domain as Docker's `splitDockerDomain` does: the first component
/// is a domain only when it looks like a host (has a dot or a port, is `localhost`, or has
/// uppercase letters, which a repository path may not).
fn split_domain(input: &str) -> (String, String) {
    let (mut domain, mut remainder) = match input.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), input.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `host(.host)*(:port)?` or `[ipv6](:port)?`.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else { return false };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let host_ok = host.is_empty() && domain.starts_with('[')
        || !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
    let port_ok = port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[sep_start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..].iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[track_caller]
    fn check(input: &str, expected: &str) {
        let parsed = Reference::parse(input).unwrap_or_else(|err| panic!("{input:?} should parse: {err}"));
        assert_eq!(parsed.to_string(), expected, "normalizing {input:?}");
        // A normalized reference is a fixed point.
        assert_eq!(Reference::parse(expected).map(|r| r.to_string()), Ok(expected.to_string()));
    }

    #[test]
    fn normalizes_like_docker() {
        check("nginx", "docker.io/library/nginx:latest");
        check("nginx:latest", "docker.io/library/nginx:latest");
        check("busybox:1.36", "docker.io/library/busybox:1.36");
        check("library/busybox", "docker.io/library/busybox:latest");
        check("docker.io/nginx", "docker.io/library/nginx:latest");
        check("index.docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25");
        check("radial/busyboxplus:curl", "docker.io/radial/busyboxplus:curl");
        check("curlimages/curl", "docker.io/curlimages/curl:latest");
        check("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10");
        check("localhost/foo", "localhost/foo:latest");
        check("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3");
        check("[::1]:5000/foo", "[::1]:5000/foo:latest");
        check("my_repo/a.b__c-d---e", "docker.io/my_repo/a.b__c-d---e:latest");
        check(&format!("nginx@sha256:{HEX}"), &format!("docker.io/library/nginx@sha256:{HEX}"));
        check(&format!("nginx:1.25@sha256:{HEX}"), &format!("docker.io/library/nginx:1.25@sha256:{HEX}"));
    }

    #[test]
    fn exposes_parts() {
        let reference = Reference::parse("radial/busyboxplus:curl").expect("valid reference");
        assert_eq!(reference.domain(), "docker.io");
        assert_eq!(reference.path(), "radial/busyboxplus");
        assert_eq!(reference.name(), "docker.io/radial/busyboxplus");
        assert_eq!(reference.tag(), Some("curl"));
        assert_eq!(reference.digest(), None);
        assert_eq!(reference.tagged_name().as_deref(), Some("docker.io/radial/busyboxplus:curl"));
        let pinned = reference.with_digest(Digest::of_bytes(b"x"));
        assert_eq!(pinned.tagged_name(), None);
        assert!(pinned.to_string().starts_with("docker.io/radial/busyboxplus@sha256:"));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for input in [
            "",
            ":",
            "nginx:",
            "/nginx",
            "nginx/",
            "a//b",
            "-nginx",
            "nginx-",
            "a..b",
            "a___b",
            "nginx:-tag",
            "nginx:tag with space",
            "nginx@sha256:abc",
            "nginx@",
            "foo.com:port/x",
            "-foo.com/x",
        ] {
            assert!(
                matches!(Reference::parse(input), Err(ReferenceError::InvalidFormat(_))),
                "{input:?} should be an invalid format, got {:?}",
                Reference::parse(input)
            );
        }
        assert!(matches!(Reference::parse("Nginx"), Err(ReferenceError::Uppercase(_))));
        assert!(matches!(Reference::parse("docker.io/Library/nginx"), Err(ReferenceError::Uppercase(_))));
        assert!(matches!(Reference::parse(HEX), Err(ReferenceError::HexIdentifier(_))));
        assert!(matches!(Reference::parse(&format!("nginx@sha512:{HEX}")), Err(ReferenceError::UnsupportedDigest(_))));
        let long = format!("{}/x", "a".repeat(300));
        assert!(matches!(Reference::parse(&long), Err(ReferenceError::NameTooLong(_))));
        assert!(matches!(
            Reference::parse(&format!("nginx:{}", "t".repeat(129))),
            Err(ReferenceError::InvalidFormat(_))
        ));
    }

    #[test]
    fn uppercase_first_component_is_a_domain() {
        // Docker treats an uppercase first component as a registry host, since repository paths
        // are lowercase; the rest must still be a valid lowercase path.
        check("Example.COM/foo", "Example.COM/foo:latest");
    }
}
