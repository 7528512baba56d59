//! Service accounts on the API server side, as upstream's `plugin/pkg/admission/serviceaccount`,
//! `pkg/registry/core/serviceaccount/storage/token.go` and `pkg/serviceaccount`:
//!
//! - admission of new pods: `spec.serviceAccountName` defaults to `default`, and unless
//!   `automountServiceAccountToken` is false on the pod or its ServiceAccount, the pod gets the
//!   `kube-api-access-<random>` projected volume (token, `ca.crt`, namespace) mounted read-only at
//!   [`TOKEN_MOUNT_PATH`] in every container that does not mount that path itself;
//! - the TokenRequest API (`POST serviceaccounts/<name>/token`): an ES256 JWT with upstream's
//!   claims, signed by a key kept beside the cluster's other keys ([`KEY_FILE`]);
//! - authentication of those tokens as bearer tokens: signature, time window and audience, then
//!   the ServiceAccount (and the pod the token is bound to, if any) must still exist with the
//!   uid the token names, as upstream's `validator.Validate` checks.
//!
//! **Missing ServiceAccounts at admission.** Upstream rejects a pod whose ServiceAccount does
//! not exist yet. rkube admits it as if the ServiceAccount allowed automounting: the
//! `default` ServiceAccount is created by a controller shortly after its namespace, so a
//! strict check would make "create a namespace, then a pod in it" racy, and an API server run
//! without controllers (its own tests) would refuse every pod. Nothing is given away by the
//! leniency: the kubelet cannot obtain a token for a ServiceAccount that does not exist (the
//! TokenRequest answers 404), so such a pod waits in ContainerCreating until it does.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::auth::{AUTHENTICATED_GROUP, User};
use crate::body::{self, Body};
use crate::error::{ApiError, FieldError, Target};
use crate::handlers::{Api, Request};
use crate::meta;
use crate::pki::PkiError;
use crate::registry;

/// The file, in the credentials directory, that holds the token signing key (PKCS#8 PEM).
pub const KEY_FILE: &str = "service-account.key";
/// The issuer, and the API's one audience, as kubeadm-built clusters have them.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Where the token, CA and namespace are mounted in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The name prefix of the projected token volume.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap with the cluster CA that every namespace gets.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The lifetime the admission plugin asks the kubelet to request; the odd seven seconds let
/// upstream recognise its own default.
pub const DEFAULT_VOLUME_EXPIRATION: i64 = 3607;
/// A TokenRequest without `expirationSeconds` gets an hour, as upstream's defaulting gives.
const DEFAULT_EXPIRATION: i64 = 3600;
/// Upstream's validation limits for `spec.expirationSeconds`.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
/// The prefix of service-account user names.
pub const USER_PREFIX: &str = "system:serviceaccount:";

/// Why a token was not accepted. The authenticator answers every one of them with 401;
/// the detail goes only to the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a JWT: {0}")]
    Malformed(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by {0:?}")]
    WrongIssuer(String),
    #[error("the token is not for this API server's audiences")]
    WrongAudience,
    #[error("signing failed")]
    Sign,
}

/// The `kubernetes.io` claim: what the token is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
}

/// A name and uid inside the `kubernetes.io` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaim {
    pub name: String,
    pub uid: String,
}

/// The claims of a service-account token, as upstream's `privateClaims` plus the registered ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(deserialize_with = "string_or_list")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    pub nbf: i64,
    pub sub: String,
}

/// RFC 7519 allows `aud` to be a single string as well as a list.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Signs and verifies service-account tokens with one ECDSA P-256 key.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    issuer: String,
    audiences: Vec<String>,
    /// Tokens whose signature, issuer and audience were checked, with their claims, so that a
    /// client's every request does not pay for an ECDSA verification again (about 45 µs).
    /// Only the exact token string hits; the time window is checked on every use.
    verified: parking_lot::Mutex<std::collections::HashMap<String, Claims>>,
}

/// How many verified tokens [`Signer::verify_cached`] remembers before it starts over.
const VERIFIED_CACHE_SIZE: usize = 1024;

impl std::fmt::Debug for Signer {
    /// Leaves out the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads `dir/`[`KEY_FILE`], creating it (mode 0600) on first start. An existing file that
    /// does not parse is an error rather than replaced, because replacing it would silently
    /// invalidate every token handed out so far.
    pub fn load_or_create(dir: &Path) -> Result<Signer, PkiError> {
        let path = dir.join(KEY_FILE);
        let parse = |detail: String| PkiError::Parse { path: path.clone(), detail };
        let pkcs8 = if path.exists() {
            let pem = std::fs::read(&path).map_err(|source| PkiError::Io { path: path.clone(), source })?;
            PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| parse(e.to_string()))?.secret_pkcs8_der().to_vec()
        } else {
            let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| parse("cannot generate a P-256 key".into()))?;
            crate::pki::write_atomic(&path, pem_encode("PRIVATE KEY", doc.as_ref()).as_bytes(), 0o600)?;
            tracing::info!(path = %path.display(), "created the service-account token signing key");
            doc.as_ref().to_vec()
        };
        Signer::from_pkcs8(&pkcs8).map_err(|_| parse("not a PKCS#8 ECDSA P-256 key".into()))
    }

    /// A signer over a PKCS#8 P-256 key, with the default issuer and audience.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Signer, TokenError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| TokenError::Sign)?;
        // The key id is a digest of the public key, as upstream derives it, so that verifiers
        // holding several keys can pick the right one.
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref()));
        Ok(Signer {
            key,
            rng,
            kid,
            issuer: ISSUER.to_owned(),
            audiences: vec![ISSUER.to_owned()],
            verified: parking_lot::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The audiences the API server accepts, and that a TokenRequest without any gets.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A compact JWS (`header.claims.signature`) of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| TokenError::Sign)?));
        let sig = self.key.sign(&self.rng, out.as_bytes()).map_err(|_| TokenError::Sign)?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(out)
    }

    /// [`Signer::verify`], remembering tokens that passed so that their signature is checked once.
    pub fn verify_cached(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.lock().get(token).cloned() {
            check_window(&claims, now)?;
            return Ok(claims);
        }
        let claims = self.verify(token, now)?;
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CACHE_SIZE {
            // Starting over is cheaper than tracking use, and costs one verification per client.
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Checks a token's signature, issuer, audience and time window at `now` (seconds since
    /// the epoch) and returns its claims. Whether the objects it names still exist is for the
    /// caller to check.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(TokenError::Malformed("the header is not base64url JSON"))?;
        // Only ES256 is ever issued; accepting what the header names would let a token choose
        // its own (weaker, or "none") algorithm.
        if header["alg"] != "ES256" {
            return Err(TokenError::BadSignature);
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        let signed = &token[..header_and_payload_len(token)];
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(TokenError::Malformed("the claims are not base64url JSON of a service-account token"))?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(TokenError::WrongAudience);
        }
        check_window(&claims, now)?;
        Ok(claims)
    }
}

fn check_window(claims: &Claims, now: i64) -> Result<(), TokenError> {
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if now < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The length of `header.payload`, the signed part of a compact JWS.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Whether a bearer token is shaped like a JWT, to try it here rather than in the token file.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The user name of a service account: `system:serviceaccount:NS:NAME`.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The user a verified token names, with upstream's groups.
pub fn user_of(claims: &Claims) -> User {
    let ns = &claims.kubernetes.namespace;
    User {
        name: user_name(ns, &claims.kubernetes.serviceaccount.name),
        uid: claims.kubernetes.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{ns}"),
            AUTHENTICATED_GROUP.to_owned(),
        ],
    }
}

// === Admission ===

/// The projected volume upstream's admission plugin adds, named `volume_name`.
pub fn token_volume(volume_name: &str) -> Value {
    json!({
        "name": volume_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": DEFAULT_VOLUME_EXPIRATION, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Mutates a new pod as upstream's ServiceAccount admission plugin does. `service_account` is
/// the pod's ServiceAccount if it exists (see the module docs for when it does not);
/// `volume_suffix` is the random part of a new volume's name.
pub fn admit_pod(pod: &mut Value, service_account: Option<&Value>, volume_suffix: &str) {
    // Mirror pods come from a node's static manifests and may not reference API objects.
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return;
    }
    if !pod["spec"].is_object() {
        return;
    }
    let spec = &mut pod["spec"];
    if spec["serviceAccountName"].as_str().unwrap_or("").is_empty() {
        spec["serviceAccountName"] = Value::from("default");
    }
    let automount = match spec["automountServiceAccountToken"].as_bool() {
        Some(pod_says) => pod_says,
        None => service_account.and_then(|sa| sa["automountServiceAccountToken"].as_bool()).unwrap_or(true),
    };
    if !automount {
        return;
    }
    // An existing token volume (a pod copied from another pod's spec) is reused, as upstream does.
    let existing = spec["volumes"].as_array().and_then(|vols| {
        vols.iter().filter_map(|v| v["name"].as_str()).find(|n| n.starts_with(VOLUME_PREFIX)).map(str::to_owned)
    });
    let volume_name = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{volume_suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers.iter_mut().filter(|c| c.is_object()) {
            let mounts_it = c["volumeMounts"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH)));
            if mounts_it {
                continue;
            }
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && existing.is_none() {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(vols) = spec["volumes"].as_array_mut() {
            vols.push(token_volume(&volume_name));
        }
    }
}

/// Reads an object, `None` if it does not exist.
async fn read_opt(api: &Api, resource: &str, namespace: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let r = registry::find("", "v1", resource).ok_or_else(|| ApiError::internal(format!("no {resource}")))?;
    match api.read(r, Some(namespace), name).await {
        Ok((obj, _)) => Ok(Some(obj)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The admission step of pod creation: looks up the pod's ServiceAccount and applies
/// [`admit_pod`].
pub async fn admit(api: &Api, pod: &mut Value) -> Result<(), ApiError> {
    let ns = meta::namespace(pod).unwrap_or("").to_owned();
    let sa_name = pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default").to_owned();
    let sa = read_opt(api, "serviceaccounts", &ns, &sa_name).await?;
    admit_pod(pod, sa.as_ref(), &meta::random_suffix(5));
    Ok(())
}

// === TokenRequest ===

/// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`.
pub async fn create_token(api: &Api, signer: &Signer, req: &Request) -> Result<Response<Body>, ApiError> {
    let ns = req.route.namespace.clone().unwrap_or_default();
    let name = req.route.name.clone().unwrap_or_default();
    let mut tr = body::decode_object(&req.headers, &req.body, ("authentication.k8s.io/v1", "TokenRequest"))?.object;
    // The response is built by writing into the request's own fields, which needs objects.
    if !tr.is_object() || !(tr["spec"].is_object() || tr["spec"].is_null()) {
        return Err(ApiError::bad_request("the body must be a TokenRequest object with an object spec"));
    }
    if !(tr["spec"]["boundObjectRef"].is_object() || tr["spec"]["boundObjectRef"].is_null()) {
        return Err(ApiError::bad_request("spec.boundObjectRef must be an object"));
    }
    let target = Target::new("", "serviceaccounts", &name);
    let invalid = |causes: Vec<FieldError>| ApiError::invalid(target.clone(), "TokenRequest", causes);
    let expiration = match &tr["spec"]["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => v
            .as_i64()
            .ok_or_else(|| invalid(vec![FieldError::invalid("spec.expirationSeconds", v, "must be an integer")]))?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(vec![FieldError::invalid(
            "spec.expirationSeconds",
            &Value::from(expiration),
            "may not specify a duration less than 10 minutes",
        )]));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(vec![FieldError::invalid(
            "spec.expirationSeconds",
            &Value::from(expiration),
            "may not specify a duration larger than 2^32 seconds",
        )]));
    }
    let audiences: Vec<String> = match tr["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => signer.audiences().to_vec(),
    };
    let sa = read_opt(api, "serviceaccounts", &ns, &name).await?.ok_or_else(|| ApiError::NotFound(target.clone()))?;
    if meta::deletion_timestamp(&sa).is_some() {
        return Err(ApiError::NotFound(target.clone()));
    }
    let bound = &tr["spec"]["boundObjectRef"];
    let pod = if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or("");
        let bound_name = bound["name"].as_str().unwrap_or("");
        if kind != "Pod" {
            return Err(invalid(vec![FieldError::not_supported(
                "spec.boundObjectRef.kind",
                &Value::from(kind),
                &["Pod"],
            )]));
        }
        if bound_name.is_empty() {
            return Err(invalid(vec![FieldError::required("spec.boundObjectRef.name", "")]));
        }
        let pod = read_opt(api, "pods", &ns, bound_name)
            .await?
            .ok_or_else(|| ApiError::NotFound(Target::new("", "pods", bound_name)))?;
        let want_uid = bound["uid"].as_str().unwrap_or("");
        if !want_uid.is_empty() && want_uid != meta::uid(&pod) {
            return Err(ApiError::Conflict {
                target: Target::new("", "pods", bound_name),
                message: format!(
                    "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            });
        }
        Some(ObjectClaim { name: bound_name.to_owned(), uid: meta::uid(&pod).to_owned() })
    } else {
        None
    };
    let now = now_unix();
    let claims = Claims {
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        iss: signer.issuer().to_owned(),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        kubernetes: KubernetesClaim {
            namespace: ns.clone(),
            serviceaccount: ObjectClaim { name: name.clone(), uid: meta::uid(&sa).to_owned() },
            pod: pod.clone(),
        },
        nbf: now,
        sub: user_name(&ns, &name),
    };
    let token = signer.sign(&claims).map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = jiff::Timestamp::from_second(claims.exp).map(|t| t.to_string()).unwrap_or_default();
    tr["apiVersion"] = Value::from("authentication.k8s.io/v1");
    tr["kind"] = Value::from("TokenRequest");
    tr["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    tr["spec"]["audiences"] = json!(audiences);
    tr["spec"]["expirationSeconds"] = Value::from(expiration);
    if let Some(p) = &pod {
        tr["spec"]["boundObjectRef"]["uid"] = Value::from(p.uid.as_str());
    }
    tr["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(body::json_response(StatusCode::CREATED, &tr))
}

// === Authentication ===

/// The user behind a service-account token, or `None` for a token that is forged, expired,
/// meant for another audience, or names a ServiceAccount or pod that no longer exists (or
/// exists under another uid, that is, was deleted and recreated).
pub async fn authenticate(api: &Api, signer: &Signer, token: &str) -> Option<User> {
    let claims = match signer.verify_cached(token, now_unix()) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "service-account token rejected");
            return None;
        }
    };
    let k = &claims.kubernetes;
    if !still_exists(api, "serviceaccounts", &k.namespace, &k.serviceaccount, true).await {
        tracing::debug!(sa = %k.serviceaccount.name, "service-account token names a ServiceAccount that is gone");
        return None;
    }
    if let Some(pod) = &k.pod
        && !still_exists(api, "pods", &k.namespace, pod, false).await
    {
        tracing::debug!(pod = %pod.name, "service-account token is bound to a pod that is gone");
        return None;
    }
    Some(user_of(&claims))
}

/// Whether the object a token names exists with the uid the token names (and, if `live_only`,
/// is not being deleted). The watch cache answers first, as upstream's validator reads its
/// informer cache, which keeps a store read off every request; the store answers when the
/// cache does not show the object, since the cache may lag an object created a moment ago.
async fn still_exists(api: &Api, resource: &str, namespace: &str, want: &ObjectClaim, live_only: bool) -> bool {
    let ok = |obj: &Value| {
        meta::name(obj) == want.name
            && meta::uid(obj) == want.uid
            && !(live_only && meta::deletion_timestamp(obj).is_some())
    };
    let Some(r) = registry::find("", "v1", resource) else { return false };
    let (_, cached) = api.cache.list(&r.prefix(), &r.key(Some(namespace), &want.name));
    if cached.iter().any(|o| ok(o)) {
        return true;
    }
    matches!(read_opt(api, resource, namespace, &want.name).await, Ok(Some(obj)) if ok(&obj))
}

#[cfg(test)]
mod tests;
