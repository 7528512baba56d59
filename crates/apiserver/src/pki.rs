//! The cluster's own certificate authority and the credentials it hands out.
//!
//! [`Pki::ensure`] is called on every start of the API server. The first time, it creates a CA, a
//! serving certificate, an admin client certificate and an admin bearer token, and writes them as
//! PEM files under one directory:
//!
//! | file | content |
//! |---|---|
//! | `ca.crt`, `ca.key` | the cluster CA (ECDSA P-256, ten years) |
//! | `server.crt`, `server.key` | the API server's serving certificate and key |
//! | `admin.crt`, `admin.key` | a client certificate for `admin` in group `system:masters` |
//! | `tokens.csv` | bearer tokens in upstream's `--token-auth-file` format |
//!
//! Later starts reuse the CA and every key, and re-issue a certificate only when it no longer does
//! its job: it was not signed by this CA, it does not match its key, it expires within
//! [`RENEW_BEFORE`], or (for the serving certificate) it does not cover every requested name. The
//! check is the one a TLS peer performs, run through rustls' own verifiers, so "covers" means what
//! it means to a client and not what a hand-written SAN comparison thinks it means.
//!
//! Key files and the token file are written with mode 0600, and every file is replaced atomically
//! (written beside the target, then renamed), so a crash never leaves half a key behind.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber, SigningKey as _,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{RootCertStore, crypto::ring};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::auth::{TokenEntry, parse_token_file};

/// The CA certificate, PEM.
pub const CA_CERT: &str = "ca.crt";
/// The CA private key, PKCS#8 PEM.
pub const CA_KEY: &str = "ca.key";
/// The serving certificate, PEM.
pub const SERVER_CERT: &str = "server.crt";
/// The serving key, PKCS#8 PEM.
pub const SERVER_KEY: &str = "server.key";
/// The admin client certificate, PEM.
pub const ADMIN_CERT: &str = "admin.crt";
/// The admin client key, PKCS#8 PEM.
pub const ADMIN_KEY: &str = "admin.key";
/// The static token file, upstream's `token,user,uid,"group1,group2"` format.
pub const TOKENS: &str = "tokens.csv";

/// The name and group of the built-in administrator, as kubeadm and k3s name theirs.
pub const ADMIN_USER: &str = "admin";
pub const MASTERS_GROUP: &str = "system:masters";

/// How long the CA lives. Rotating a CA means re-issuing every credential in the cluster, so it is
/// made long enough never to be the reason a cluster breaks.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a leaf certificate lives, as kubeadm's are: short enough that a leaked key expires,
/// long enough that a cluster restarted once in a while renews it long before then.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A leaf that expires within this window is re-issued at start, so a server restarted now keeps
/// working for at least this long.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Certificates start being valid this long before they are issued, so a peer whose clock lags a
/// little does not reject a certificate issued a moment ago.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Names the serving certificate always carries: loopback, and the names in-cluster clients use
/// for the `kubernetes` service.
const DEFAULT_SANS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The serving certificate's common name, as upstream's.
const SERVER_CN: &str = "kube-apiserver";

/// Serializes read-modify-write of `tokens.csv` within this process, so two agents minted at once
/// do not lose one another's line.
static TOKENS_LOCK: Mutex<()> = Mutex::new(());

/// Everything that can go wrong while loading or creating credentials. Each names the file or the
/// value involved, because "invalid PEM" without a path sends the operator hunting.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path}: exists, but {missing} does not; refusing to replace a CA that may already be trusted")]
    Incomplete { path: PathBuf, missing: PathBuf },
    #[error("{path}:{line}: {detail}")]
    TokenFile { path: PathBuf, line: usize, detail: String },
    #[error("generating {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName { what: &'static str, value: String, reason: String },
    #[error("building the TLS configuration: {0}")]
    Tls(String),
    #[error("rewriting the subject of {what}: the certificate's DER has an unexpected shape")]
    Rewrite { what: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

fn gen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Generate { what, source }
}

/// The cluster's credentials as they were on disk when [`Pki::ensure`] returned.
///
/// The PEM fields are a snapshot for callers that need to hand them on (kubeconfigs, node agents);
/// changing them does not change what [`Pki::server_config`] serves.
pub struct Pki {
    /// The directory the files live in.
    pub dir: PathBuf,
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// A bearer token for `admin` in `system:masters`, from `tokens.csv`.
    pub admin_token: String,
    ca_cert_der: CertificateDer<'static>,
    ca_key: KeyPair,
    server_config: Arc<ServerConfig>,
}

impl fmt::Debug for Pki {
    /// Leaves out every secret, so a `Pki` can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The ring provider, named explicitly: the workspace builds rustls without aws-lc, so relying on a
/// process-wide default would fail whenever nothing installed one.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

impl Pki {
    /// Loads the credentials under `dir`, creating whatever is missing; see the module docs.
    ///
    /// `sans` are extra names for the serving certificate: each string that parses as an IP
    /// address becomes an IP SAN, every other one a DNS SAN.
    pub fn ensure(dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        // Checked first, so a mistyped name leaves no files behind.
        let names = serving_names(sans)?;
        // Created 0700 because the directory holds keys; an existing directory is left as the
        // operator made it.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err(dir))?;

        let (ca_key, ca_cert_pem) = load_or_create_ca(dir)?;
        let ca_path = dir.join(CA_CERT);
        let ca_cert_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
            .map_err(|e| PkiError::Parse { path: ca_path.clone(), detail: e.to_string() })?;
        warn_if_ca_expires_soon(&ca_path, &ca_cert_der);
        let issuer = Issuer::from_ca_cert_der(&ca_cert_der, &ca_key)
            .map_err(|e| PkiError::Parse { path: ca_path.clone(), detail: e.to_string() })?;

        let mut roots = RootCertStore::empty();
        roots.add(ca_cert_der.clone()).map_err(|e| PkiError::Parse { path: ca_path.clone(), detail: e.to_string() })?;
        let roots = Arc::new(roots);
        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        // A certificate must still verify this far in the future to be kept.
        let horizon = UnixTime::since_unix_epoch(now_since_epoch() + RENEW_BEFORE);

        let server_names: Vec<ServerName<'static>> = names.iter().map(|(_, n)| n.clone()).collect();
        let server_key = load_or_create_key(dir, SERVER_KEY)?;
        let server_cert_pem = load_or_issue(
            dir,
            SERVER_CERT,
            &server_key,
            |der| {
                server_names.iter().all(|name| server_verifier.verify_server_cert(der, &[], name, &[], horizon).is_ok())
            },
            || {
                let mut params = leaf_params(SERVER_CN, &[], ExtendedKeyUsagePurpose::ServerAuth);
                params.subject_alt_names = names.iter().map(|(_, n)| san_of(n)).collect::<Result<_, _>>()?;
                Ok(params.signed_by(&server_key, &issuer).map_err(gen_err("the serving certificate"))?.pem())
            },
        )?;

        let admin_key = load_or_create_key(dir, ADMIN_KEY)?;
        let admin_key_pem = admin_key.serialize_pem();
        let admin_cert_pem = load_or_issue(
            dir,
            ADMIN_CERT,
            &admin_key,
            |der| client_verifier.verify_client_cert(der, &[], horizon).is_ok(),
            || sign_client_cert(&issuer, &ca_key, &admin_key, ADMIN_USER, &[MASTERS_GROUP.to_string()]),
        )?;

        let admin_token = ensure_admin_token(dir)?;

        let server_config = build_server_config(dir, &server_cert_pem, &server_key, roots)?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_cert_pem,
            server_cert_pem,
            admin_cert_pem,
            admin_key_pem,
            admin_token,
            ca_cert_der,
            ca_key,
            server_config,
        })
    }

    /// The CA certificate, DER, for callers that build their own trust store.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// Issues a fresh client certificate and key for `common_name` in the given groups
    /// (`organizations`), returned as `(cert_pem, key_pem)`. Nothing is written to disk: the
    /// caller (a node agent's bootstrap, say) decides where the key goes.
    pub fn issue_client_cert(&self, common_name: &str, organizations: &[String]) -> Result<(String, String), PkiError> {
        if common_name.is_empty() {
            return Err(PkiError::InvalidName {
                what: "common name",
                value: String::new(),
                reason: "must not be empty, because the API server takes the user name from it".into(),
            });
        }
        let key = KeyPair::generate().map_err(gen_err(format!("a key for {common_name:?}")))?;
        let issuer = Issuer::from_ca_cert_der(&self.ca_cert_der, &self.ca_key)
            .map_err(|e| PkiError::Parse { path: self.dir.join(CA_CERT), detail: e.to_string() })?;
        let cert_pem = sign_client_cert(&issuer, &self.ca_key, &key, common_name, organizations)?;
        Ok((cert_pem, key.serialize_pem()))
    }

    /// A TLS configuration that serves the serving certificate, offers ALPN `h2` and `http/1.1`,
    /// and asks for (without requiring) a client certificate signed by the cluster CA. A client
    /// that presents none still connects, so a bearer token or a 401 can decide.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    /// Appends `token` for `user` in `groups` to this cluster's token file; see [`add_token`].
    pub fn add_token(&self, token: &str, user: &str, groups: &[String]) -> Result<(), PkiError> {
        add_token(&self.dir, token, user, groups)
    }

    /// Mints a random token for `user` in `groups` in this cluster's token file; see [`mint_token`].
    pub fn mint_token(&self, user: &str, groups: &[String]) -> Result<String, PkiError> {
        mint_token(&self.dir, user, groups)
    }

    /// Writes an admin kubeconfig (mode 0600) that trusts the cluster CA and logs in with the admin
    /// client certificate. The cluster and context are named `cluster_name`, the user
    /// `<cluster_name>-admin`, so kubeconfigs of several clusters merge without clashing.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str, cluster_name: &str) -> Result<(), PkiError> {
        let cluster = yaml_quote(cluster_name);
        let user = yaml_quote(&format!("{cluster_name}-admin"));
        let server = yaml_quote(server_url);
        let ca = BASE64.encode(&self.ca_cert_pem);
        let cert = BASE64.encode(&self.admin_cert_pem);
        let key = BASE64.encode(&self.admin_key_pem);
        let yaml = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    certificate-authority-data: {ca}
    server: {server}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {cluster}
  context:
    cluster: {cluster}
    user: {user}
current-context: {cluster}
preferences: {{}}
"
        );
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write_atomic(path, yaml.as_bytes(), 0o600)
    }
}

/// Appends a line for `token` to `dir/tokens.csv`, creating the file if needed. The uid column is
/// the user name, as k3s writes it. A running [`crate::auth::Authenticator`] notices the change
/// on its next token lookup.
pub fn add_token(dir: &Path, token: &str, user: &str, groups: &[String]) -> Result<(), PkiError> {
    // The token itself stays out of the error, which may end up in a log.
    if token.is_empty() || token.contains([',', '"']) || token.chars().any(char::is_whitespace) {
        return Err(invalid(
            "token",
            "(not shown)",
            "must be non-empty, without commas, quotes or whitespace, or no Authorization header could carry it",
        ));
    }
    check_csv_value("user", user)?;
    if user.is_empty() {
        return Err(invalid("user", user, "must not be empty"));
    }
    for group in groups {
        check_csv_value("group", group)?;
        if group.is_empty() {
            return Err(invalid("group", group, "must not be empty"));
        }
    }
    let path = dir.join(TOKENS);
    // A poisoned lock only means another writer panicked; the file itself is replaced atomically,
    // so it is still whole and the lock can be taken over.
    let _guard = TOKENS_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut contents = match fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(PkiError::Io { path, source: e }),
    };
    if !contents.is_empty() && !contents.ends_with('\n') {
        contents.push('\n');
    }
    contents.push_str(&format!("{token},{user},{user}"));
    if !groups.is_empty() {
        contents.push_str(&format!(",\"{}\"", groups.join(",")));
    }
    contents.push('\n');
    write_atomic(&path, contents.as_bytes(), 0o600)
}

/// Mints a random bearer token for `user` in `groups`, records it in `dir/tokens.csv`, and returns
/// it. Tokens are 64 hex digits drawn from the OS random source (through UUID v4), 244 random bits.
pub fn mint_token(dir: &Path, user: &str, groups: &[String]) -> Result<String, PkiError> {
    let token = random_token();
    add_token(dir, &token, user, groups)?;
    Ok(token)
}

fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn invalid(what: &'static str, value: &str, reason: &str) -> PkiError {
    PkiError::InvalidName { what, value: value.to_string(), reason: reason.to_string() }
}

/// Rejects what would break a line of the token file: commas split columns (and groups), quotes
/// and line breaks would need escaping that not every reader of the format handles.
fn check_csv_value(what: &'static str, value: &str) -> Result<(), PkiError> {
    if value.contains([',', '"', '\n', '\r']) {
        return Err(invalid(what, value, "must not contain commas, quotes or line breaks"));
    }
    Ok(())
}

/// Returns the admin token from `tokens.csv`, minting one if the file or the admin line is missing.
fn ensure_admin_token(dir: &Path) -> Result<String, PkiError> {
    let path = dir.join(TOKENS);
    let entries: Vec<TokenEntry> = match parse_token_file(&path) {
        Ok(entries) => entries,
        Err(PkiError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let existing =
        entries.into_iter().find(|e| e.user.name == ADMIN_USER && e.user.groups.iter().any(|g| g == MASTERS_GROUP));
    match existing {
        Some(entry) => Ok(entry.token),
        None => mint_token(dir, ADMIN_USER, &[MASTERS_GROUP.to_string()]),
    }
}

fn now_since_epoch() -> Duration {
    // A clock before 1970 is a broken clock; treating it as the epoch makes every certificate look
    // expired-soon and re-issued, which is the safe direction.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A random positive serial. Serials must differ between certificates of one issuer, including a
/// serving certificate re-issued for the same key, which rcgen's key-derived default would repeat.
fn random_serial() -> SerialNumber {
    let mut bytes = uuid::Uuid::new_v4().into_bytes();
    // Serials are positive integers; a clear top bit keeps this one positive.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
}

fn leaf_params(common_name: &str, organizations: &[String], usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    validity(&mut params, LEAF_VALIDITY);
    params.serial_number = Some(random_serial());
    let mut dn = DistinguishedName::new();
    if let Some(org) = organizations.first() {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    // Strict verifiers (OpenSSL's X509_STRICT, which Python 3.13 turns on) want the authority key
    // identifier in every certificate a CA issues.
    params.use_authority_key_identifier_extension = true;
    params
}

fn load_or_create_ca(dir: &Path) -> Result<(KeyPair, String), PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let key = read_key(&key_path)?;
            let pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| PkiError::Parse { path: cert_path.clone(), detail: e.to_string() })?;
            if public_key_of(&cert_path, &der)? != key.subject_public_key_info() {
                return Err(PkiError::Parse {
                    path: cert_path,
                    detail: format!("does not match the key in {}", key_path.display()),
                });
            }
            Ok((key, pem))
        }
        // Half a CA is never repaired by making a new one: other machines may trust the old
        // certificate, and a new CA would silently invalidate every credential they hold.
        (true, false) => Err(PkiError::Incomplete { path: cert_path, missing: key_path }),
        (false, true) => Err(PkiError::Incomplete { path: key_path, missing: cert_path }),
        (false, false) => {
            let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
            let mut params = CertificateParams::default();
            validity(&mut params, CA_VALIDITY);
            params.serial_number = Some(random_serial());
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "rkube-ca");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            let cert = params.self_signed(&key).map_err(gen_err("the CA certificate"))?;
            // The key goes first: a certificate without its key is the state the branch above
            // refuses to touch, a key without its certificate is only ever our own crash.
            write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), "created the cluster CA");
            Ok((key, cert.pem()))
        }
    }
}

fn warn_if_ca_expires_soon(path: &Path, der: &CertificateDer<'_>) {
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        let left = cert.validity().not_after.timestamp().saturating_sub(now_since_epoch().as_secs() as i64);
        if left < RENEW_BEFORE.as_secs() as i64 {
            tracing::warn!(path = %path.display(), seconds_left = left, "the cluster CA expires soon; every credential must be re-issued under a new CA");
        }
    }
}

fn read_key(path: &Path) -> Result<KeyPair, PkiError> {
    let pem = fs::read_to_string(path).map_err(io_err(path))?;
    KeyPair::from_pem(&pem).map_err(|e| PkiError::Parse { path: path.to_path_buf(), detail: e.to_string() })
}

fn load_or_create_key(dir: &Path, name: &str) -> Result<KeyPair, PkiError> {
    let path = dir.join(name);
    if path.exists() {
        return read_key(&path);
    }
    let key = KeyPair::generate().map_err(gen_err(format!("{}", path.display())))?;
    write_atomic(&path, key.serialize_pem().as_bytes(), 0o600)?;
    Ok(key)
}

fn public_key_of(path: &Path, der: &CertificateDer<'_>) -> Result<Vec<u8>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Parse { path: path.to_path_buf(), detail: e.to_string() })?;
    Ok(cert.public_key().raw.to_vec())
}

/// Keeps `dir/name` if it parses, belongs to `key` and passes `still_good`; otherwise issues a new
/// certificate with `issue` and writes it. Returns the PEM in use.
fn load_or_issue(
    dir: &Path,
    name: &str,
    key: &KeyPair,
    still_good: impl Fn(&CertificateDer<'_>) -> bool,
    issue: impl FnOnce() -> Result<String, PkiError>,
) -> Result<String, PkiError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(pem) => {
            let reusable = CertificateDer::from_pem_slice(pem.as_bytes()).ok().is_some_and(|der| {
                public_key_of(&path, &der).is_ok_and(|spki| spki == key.subject_public_key_info()) && still_good(&der)
            });
            if reusable {
                return Ok(pem);
            }
            tracing::info!(path = %path.display(), "re-issuing a certificate that is expiring, foreign or does not cover the requested names");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(PkiError::Io { path, source: e }),
    }
    let pem = issue()?;
    write_atomic(&path, pem.as_bytes(), 0o644)?;
    Ok(pem)
}

/// The serving certificate's names: the requested ones first, then [`DEFAULT_SANS`], without
/// duplicates or empty strings (which a split of an empty setting produces). Each is checked as a TLS client would check it, so a name no client could ever ask
/// for is an error now rather than a certificate that never verifies.
fn serving_names(sans: &[String]) -> Result<Vec<(String, ServerName<'static>)>, PkiError> {
    let mut names: Vec<(String, ServerName<'static>)> = Vec::new();
    for raw in sans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).chain(DEFAULT_SANS.iter().copied()) {
        let name = match raw.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(raw.to_string())
                .map_err(|e| invalid("subject alternative name", raw, &e.to_string()))?,
        };
        if !names.iter().any(|(_, n)| *n == name) {
            names.push((raw.to_string(), name));
        }
    }
    Ok(names)
}

fn san_of(name: &ServerName<'_>) -> Result<SanType, PkiError> {
    match name {
        ServerName::IpAddress(ip) => Ok(SanType::IpAddress(IpAddr::from(*ip))),
        ServerName::DnsName(dns) => {
            let value = dns.as_ref();
            value
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| invalid("subject alternative name", value, &format!("{e}")))
        }
        other => Err(invalid("subject alternative name", &format!("{other:?}"), "unsupported kind of name")),
    }
}

/// Issues a client certificate. rcgen keeps one value per attribute type, but Kubernetes reads
/// every `O` as a group, so for more than one group the subject is written here and the
/// certificate re-signed with the CA key.
fn sign_client_cert(
    issuer: &Issuer<'_, &KeyPair>,
    ca_key: &KeyPair,
    key: &KeyPair,
    common_name: &str,
    organizations: &[String],
) -> Result<String, PkiError> {
    let params = leaf_params(common_name, organizations, ExtendedKeyUsagePurpose::ClientAuth);
    let what = || format!("a client certificate for {common_name:?}");
    let cert = params.signed_by(key, issuer).map_err(gen_err(what()))?;
    if organizations.len() <= 1 {
        return Ok(cert.pem());
    }
    let subject = der::name(common_name, organizations);
    let der = der::replace_subject(cert.der(), &subject, |tbs| ca_key.sign(tbs))
        .ok_or_else(|| PkiError::Rewrite { what: what() })?
        .map_err(gen_err(what()))?;
    Ok(pem_encode("CERTIFICATE", &der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Just enough DER to write a subject with repeated attributes and splice it into a certificate.
mod der {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0c;
    const BIT_STRING: u8 = 0x03;
    /// id-at-commonName, 2.5.4.3.
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    /// id-at-organizationName, 2.5.4.10.
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
        let pair = [tlv(OID, oid), tlv(UTF8_STRING, value.as_bytes())].concat();
        tlv(SET, &tlv(SEQUENCE, &pair))
    }

    /// A Name with one RDN per organization, then the common name: the order Go's `pkix.Name`
    /// writes, and so the order `kubeadm`-issued certificates show.
    pub fn name(common_name: &str, organizations: &[String]) -> Vec<u8> {
        let mut rdns: Vec<u8> = organizations.iter().flat_map(|o| attribute(O, o)).collect();
        rdns.extend(attribute(CN, common_name));
        tlv(SEQUENCE, &rdns)
    }

    /// Reads one element's header at the start of `buf`: (tag, header length, total length).
    fn header(buf: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *buf.first()?;
        let first = *buf.get(1)? as usize;
        let (len, header_len) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let len = buf.get(2..2 + n)?.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        let total = header_len.checked_add(len)?;
        (total <= buf.len()).then_some((tag, header_len, total))
    }

    /// Replaces the subject of `cert` with `subject` and signs the new TBSCertificate with `sign`,
    /// keeping the signature algorithm identifier. `None` means `cert` is not shaped like a
    /// certificate.
    pub fn replace_subject<E>(
        cert: &[u8],
        subject: &[u8],
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Option<Result<Vec<u8>, E>> {
        let (tag, h, total) = header(cert)?;
        if tag != SEQUENCE {
            return None;
        }
        let body = &cert[h..total];
        let (_, tbs_h, tbs_total) = header(body)?;
        let tbs_content = &body[tbs_h..tbs_total];
        let rest = &body[tbs_total..];
        let (_, _, alg_total) = header(rest)?;
        let alg_id = &rest[..alg_total];

        // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject, ...
        let mut pos = 0;
        if *tbs_content.first()? == 0xa0 {
            pos += header(tbs_content)?.2;
        }
        for _ in 0..4 {
            pos += header(tbs_content.get(pos..)?)?.2;
        }
        let (_, _, subject_len) = header(tbs_content.get(pos..)?)?;
        let new_content = [&tbs_content[..pos], subject, &tbs_content[pos + subject_len..]].concat();
        let tbs = tlv(SEQUENCE, &new_content);
        let signature = match sign(&tbs) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let bits = tlv(BIT_STRING, &[&[0u8][..], &signature].concat());
        Some(Ok(tlv(SEQUENCE, &[tbs, alg_id.to_vec(), bits].concat())))
    }
}

fn build_server_config(
    dir: &Path,
    cert_pem: &str,
    key: &KeyPair,
    roots: Arc<RootCertStore>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let cert_path = dir.join(SERVER_CERT);
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| PkiError::Parse { path: cert_path, detail: e.to_string() })?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key_der)
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A YAML double-quoted scalar. JSON's string syntax is a subset of YAML's double-quoted style,
/// so JSON escaping quotes any URL or name safely.
fn yaml_quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Writes `contents` to `path` with `mode`, through a temporary file in the same directory and a
/// rename, so readers see the old file or the new one and never a partial key.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io_err(&tmp))?;
    // `mode` only applies to a file that is created; a stale temporary file keeps its old mode.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    file.write_all(contents).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}
