//! `rkube cert`: the tutorial's self-signed certificate without openssl.
//!
//! The tutorial runs `openssl req -x509 -nodes -days 365 -newkey rsa:2048 -keyout nginx.key
//! -out nginx.crt -subj "/CN=my-nginx/O=my-nginx"`. This makes the equivalent: a self-signed
//! certificate with that subject, valid for the given number of days, marked as a CA as
//! `openssl req -x509` marks it (clients such as curl use it as its own trust anchor with
//! `--cacert`), with the common name also as a DNS subject alternative name, which modern
//! clients check instead of the common name. The key is ECDSA P-256 rather than RSA: the
//! crypto library here (ring) signs with RSA but cannot generate RSA keys, and nginx,
//! kubectl and curl accept either.

use std::path::Path;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

use crate::cli::CertArgs;

pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let (cert, key) = make(&args.cn, args.org.as_deref().unwrap_or(&args.cn), args.days)?;
    write(&args.key, key.as_bytes(), 0o600)?;
    write(&args.cert, cert.as_bytes(), 0o644)?;
    println!("wrote {} and {} (CN={}, {} days)", args.key.display(), args.cert.display(), args.cn, args.days);
    Ok(())
}

/// A self-signed certificate and its private key, both PEM.
pub fn make(cn: &str, org: &str, days: u32) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(!cn.is_empty(), "--cn must not be empty");
    anyhow::ensure!((1..=36500).contains(&days), "--days must be between 1 and 36500");
    let mut params = CertificateParams::new(vec![cn.to_owned()]).context("--cn is not a valid DNS name")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, org);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = jiff::Timestamp::now();
    let later = now
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .context("--days is too far in the future")?;
    // Whole days, as rcgen takes them; the certificate is valid from the start of today (UTC).
    let ymd = |t: jiff::Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(d.year()), d.month().unsigned_abs(), d.day().unsigned_abs())
    };
    params.not_before = ymd(now);
    params.not_after = ymd(later);
    let key = KeyPair::generate().context("generating a key")?;
    let cert = params.self_signed(&key).context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(data).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(args: &[&str]) -> String {
        let out = std::process::Command::new("openssl").args(args).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// openssl reads what `rkube cert` writes as the tutorial's certificate: the subject, a
    /// self-signed chain that verifies, the name as a SAN, and a key that belongs to it.
    #[test]
    fn openssl_accepts_the_certificate_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, crt) = (dir.path().join("nginx.key"), dir.path().join("nginx.crt"));
        run(CertArgs { cn: "my-nginx".into(), org: None, key: key.clone(), cert: crt.clone(), days: 365 })
            .expect("rkube cert");
        let (k, c) = (key.to_str().expect("path"), crt.to_str().expect("path"));
        let subject = openssl(&["x509", "-in", c, "-noout", "-subject"]);
        assert!(subject.contains("CN = my-nginx") && subject.contains("O = my-nginx"), "{subject}");
        assert!(openssl(&["verify", "-CAfile", c, c]).contains("OK"));
        assert!(openssl(&["x509", "-in", c, "-noout", "-ext", "subjectAltName"]).contains("DNS:my-nginx"));
        assert_eq!(openssl(&["x509", "-in", c, "-noout", "-pubkey"]), openssl(&["pkey", "-in", k, "-pubout"]));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).expect("stat").permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(make("", "o", 365).is_err());
        assert!(make("my-nginx", "o", 0).is_err());
        assert!(make("my-nginx", "o", 100_000).is_err());
    }
}
