//! The files of the API-data volumes (secret, configMap, downwardAPI, projected), computed as
//! kubelet's `MakePayload` and `CollectData` functions do, before anything touches the disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};

use super::atomic::{FileProjection, clean_path};
use super::{SetUpError, VolumeContext};
use crate::kubelet::env;
use crate::kubelet::source::{ObjectSource, SourceError};

/// The API server's default for `defaultMode` and the items' `mode`.
pub const DEFAULT_MODE: i32 = 0o644;

/// The ConfigMap every namespace gets with the cluster CA, read by `kube-api-access-*`.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Kubelet's longest token lifetime before a refresh, whatever the expiration asked for.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// A mode from the API, limited to permission bits so that a bad value cannot set odd bits.
fn file_mode(mode: Option<i32>, default_mode: i32) -> u32 {
    u32::try_from(mode.unwrap_or(default_mode)).unwrap_or(0o644) & 0o777
}

fn file_user(user: Option<i64>, default_user: Option<i64>) -> Option<u32> {
    user.or(default_user).and_then(|u| u32::try_from(u).ok())
}

/// The payload of a key-value object: every key as a file, or only the listed `items`.
/// A listed key that is missing is an error unless the volume is optional.
fn key_value_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    default_user: Option<i64>,
    optional: bool,
    missing_key: impl Fn(&str) -> SetUpError,
) -> Result<BTreeMap<String, FileProjection>, SetUpError> {
    let mut payload = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, bytes) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(None, default_mode),
                        user: file_user(None, default_user),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(item.mode, default_mode),
                        user: file_user(item.user, default_user),
                    },
                );
            }
        }
    }
    Ok(payload)
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        secret.data.iter().flatten().map(|(k, ByteString(v))| (k.clone(), v.clone())).collect();
    // `stringData` is folded into `data` by the API server; an object that still has it (a
    // test fixture) gets the same treatment here.
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> =
        cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    for (k, ByteString(v)) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.clone());
    }
    data
}

/// The Secret's files: kubelet's secret `MakePayload`.
pub fn secret_payload(
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    default_user: Option<i64>,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, SetUpError> {
    key_value_payload(&secret_data(secret), items, default_mode, default_user, optional, |k| {
        SetUpError::MissingSecretKey(k.to_owned())
    })
}

/// The ConfigMap's files, from `data` and `binaryData`: kubelet's configmap `MakePayload`.
pub fn config_map_payload(
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    default_user: Option<i64>,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, SetUpError> {
    key_value_payload(&config_map_data(cm), items, default_mode, default_user, optional, |k| {
        SetUpError::MissingConfigKey(k.to_owned())
    })
}

/// The downward API files: kubelet's `CollectData`. Every item is tried; the failures are
/// reported together.
pub fn downward_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    default_user: Option<i64>,
    node_allocatable: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Result<BTreeMap<String, FileProjection>, SetUpError> {
    let mut payload = BTreeMap::new();
    let mut errors = Vec::new();
    for item in items {
        let value = if let Some(field_ref) = &item.field_ref {
            env::field_ref_value(pod, &field_ref.field_path)
        } else if let Some(resource_ref) = &item.resource_field_ref {
            // A volume item names its container; kubelet requires it, so an empty name
            // finds no container rather than guessing one.
            let name = resource_ref.container_name.clone().unwrap_or_default();
            match pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == name)) {
                Some(container) => env::resource_field_value(pod, container, resource_ref, node_allocatable),
                None => Err(env::EnvError::ResourceFieldRef(format!("container {name} not found"))),
            }
        } else {
            Ok(String::new())
        };
        match value {
            Ok(value) => {
                payload.insert(
                    clean_path(&item.path),
                    FileProjection {
                        data: value.into_bytes(),
                        mode: file_mode(item.mode, default_mode),
                        user: file_user(item.user, default_user),
                    },
                );
            }
            Err(err) => errors.push(SetUpError::Env(err)),
        }
    }
    SetUpError::aggregate(errors).map_or(Ok(payload), Err)
}

/// Reads a ConfigMap, standing in the cluster CA for a `kube-root-ca.crt` the cluster has not
/// published (yet), so that `kube-api-access-*` volumes work without that controller.
pub async fn get_config_map(
    ctx: &VolumeContext<'_>,
    source: &dyn ObjectSource,
    namespace: &str,
    name: &str,
) -> Result<Option<ConfigMap>, SourceError> {
    let found = source.config_map(namespace, name).await?;
    if found.is_none()
        && name == ROOT_CA_CONFIG_MAP
        && let Some(pem) = ctx.cluster_ca_pem
    {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.to_owned());
        cm.metadata.namespace = Some(namespace.to_owned());
        cm.data = Some(BTreeMap::from([("ca.crt".to_owned(), pem.to_owned())]));
        return Ok(Some(cm));
    }
    Ok(found)
}

/// The projected volume's files, from all its sources in order (kubelet's projected
/// `collectData`). `current` is the volume's `..data` directory when it exists: a token in it
/// that is not due for a refresh is kept rather than requested again.
pub async fn projected_payload(
    ctx: &VolumeContext<'_>,
    source: &dyn ObjectSource,
    projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    current: Option<&Path>,
) -> Result<BTreeMap<String, FileProjection>, SetUpError> {
    let pod = ctx.pod;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = projected.default_mode.unwrap_or(DEFAULT_MODE);
    let default_user = projected.default_user;
    let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.fs_group);
    let mut payload = BTreeMap::new();
    let mut errors = Vec::new();
    for projection in projected.sources.iter().flatten() {
        if let Some(secret_ref) = &projection.secret {
            let optional = secret_ref.optional.unwrap_or(false);
            let secret = match source.secret(namespace, &secret_ref.name).await {
                Ok(Some(secret)) => secret,
                Ok(None) if optional => Secret::default(),
                Ok(None) => {
                    errors.push(SetUpError::SecretNotFound(secret_ref.name.clone()));
                    continue;
                }
                Err(err) => {
                    errors.push(SetUpError::Source(err));
                    continue;
                }
            };
            match secret_payload(&secret, secret_ref.items.as_deref(), default_mode, default_user, optional) {
                Ok(files) => payload.extend(files),
                Err(err) => errors.push(err),
            }
        } else if let Some(cm_ref) = &projection.config_map {
            let optional = cm_ref.optional.unwrap_or(false);
            let cm = match get_config_map(ctx, source, namespace, &cm_ref.name).await {
                Ok(Some(cm)) => cm,
                Ok(None) if optional => ConfigMap::default(),
                Ok(None) => {
                    errors.push(SetUpError::ConfigMapNotFound(cm_ref.name.clone()));
                    continue;
                }
                Err(err) => {
                    errors.push(SetUpError::Source(err));
                    continue;
                }
            };
            match config_map_payload(&cm, cm_ref.items.as_deref(), default_mode, default_user, optional) {
                Ok(files) => payload.extend(files),
                Err(err) => errors.push(err),
            }
        } else if let Some(downward) = &projection.downward_api {
            match downward_payload(
                pod,
                downward.items.as_deref().unwrap_or_default(),
                default_mode,
                default_user,
                ctx.node_allocatable,
            ) {
                Ok(files) => payload.extend(files),
                Err(err) => errors.push(err),
            }
        } else if let Some(token) = &projection.service_account_token {
            // With an fsGroup the token is 0600 and ownership management adds group read,
            // as kubelet does, instead of the volume's default mode.
            let mode = if fs_group.is_some() { 0o600 } else { file_mode(None, default_mode) };
            let expiration = token.expiration_seconds.unwrap_or(3600);
            let path = clean_path(&token.path);
            let kept = current.and_then(|dir| fresh_token(&dir.join(&path), expiration, SystemTime::now()));
            let data = match kept {
                Some(data) => data,
                None => {
                    let audiences: Vec<String> = token.audience.iter().filter(|a| !a.is_empty()).cloned().collect();
                    let service_account = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.as_deref())
                        .filter(|s| !s.is_empty())
                        .unwrap_or("default");
                    match source
                        .service_account_token(
                            namespace,
                            service_account,
                            &audiences,
                            expiration,
                            pod.metadata.name.as_deref().unwrap_or(""),
                            pod.metadata.uid.as_deref().unwrap_or(""),
                        )
                        .await
                    {
                        Ok(token) => token.into_bytes(),
                        Err(err) => {
                            errors.push(SetUpError::Source(err));
                            continue;
                        }
                    }
                }
            };
            payload.insert(path, FileProjection { data, mode, user: file_user(token.user, default_user) });
        } else if projection.cluster_trust_bundle.is_some() || projection.pod_certificate.is_some() {
            errors.push(SetUpError::Unsupported("projected clusterTrustBundle or podCertificate source"));
        }
    }
    SetUpError::aggregate(errors).map_or(Ok(payload), Err)
}

/// The issue and expiry times in a JWT's claims, if `token` is one.
fn jwt_times(token: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(token).ok()?;
    let claims = text.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = json["exp"].as_i64()?;
    let iat = json["iat"].as_i64().or_else(|| json["nbf"].as_i64())?;
    Some((iat, exp))
}

/// The token at `path` when it is not yet due for a refresh: kubelet refreshes a token once
/// 80% of its lifetime has passed, or after 24 hours. The times come from the token's own
/// claims, or for an opaque token from the file's age and the requested expiration.
pub fn fresh_token(path: &Path, expiration_seconds: i64, now: SystemTime) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let (issued, expires) = match jwt_times(&data) {
        Some((iat, exp)) => {
            let at = |secs: i64| -> Option<SystemTime> {
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
            };
            (at(iat)?, at(exp)?)
        }
        None => {
            let issued = std::fs::metadata(path).ok()?.modified().ok()?;
            (issued, issued + Duration::from_secs(u64::try_from(expiration_seconds).ok()?))
        }
    };
    let lifetime = expires.duration_since(issued).ok()?;
    let refresh_at = issued + (lifetime * 4 / 5).min(MAX_TOKEN_TTL);
    (now < refresh_at).then_some(data)
}
