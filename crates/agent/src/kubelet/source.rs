//! Where the kubelet gets the API objects a pod refers to: Secrets, ConfigMaps and bound
//! service-account tokens.
//!
//! [`ApiSource`] reads them through the API server; [`MapSource`] holds them in memory for
//! tests. "Not found" is an answer (`Ok(None)`), not an error: callers turn it into kubelet's
//! own messages (`secret "x" not found`) or, for optional references, into nothing at all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;

/// A failure to read an object, other than its absence. All of these are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The API server answered with an error status; the message is the server's own
    /// (`serviceaccounts "default" not found`, `secrets "x" is forbidden: ...`).
    #[error("{message}")]
    Api { code: u16, message: String },
    /// The API server could not be reached, or its answer could not be read.
    #[error("{0}")]
    Transport(String),
}

impl From<kube::Error> for SourceError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => SourceError::Api { code: status.code, message: status.message.clone() },
            other => SourceError::Transport(other.to_string()),
        }
    }
}

/// The objects a pod's volumes and environment refer to.
#[async_trait::async_trait]
pub trait ObjectSource: Send + Sync {
    /// The Secret, or `None` when it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError>;
    /// The ConfigMap, or `None` when it does not exist.
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError>;
    /// A bound service-account token (TokenRequest, `serviceaccounts/<sa>/token`), for
    /// projected volumes. An empty `audiences` asks for the API server's default audience.
    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        expiration_seconds: i64,
        pod_name: &str,
        pod_uid: &str,
    ) -> Result<String, SourceError>;
}

/// Reads objects through the API server with plain GETs; every call is a fresh read, so a
/// refresh sees updates as soon as the API server has them.
#[derive(Clone)]
pub struct ApiSource {
    client: kube::Client,
}

impl ApiSource {
    pub fn new(client: kube::Client) -> Self {
        ApiSource { client }
    }
}

impl std::fmt::Debug for ApiSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSource").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ObjectSource for ApiSource {
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        expiration_seconds: i64,
        pod_name: &str,
        pod_uid: &str,
    ) -> Result<String, SourceError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(audiences.to_vec()),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Pod".to_owned()),
                    name: Some(pod_name.to_owned()),
                    uid: Some(pod_uid.to_owned()),
                }),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let answer = api.create_token_request(service_account, &PostParams::default(), &request).await?;
        match answer.status.and_then(|s| s.token).filter(|t| !t.is_empty()) {
            Some(token) => Ok(token),
            _ => Err(SourceError::Transport(format!(
                "the token request for service account {namespace}/{service_account} returned no token"
            ))),
        }
    }
}

/// One token handed out by a [`MapSource`], as the test saw it requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub pod_name: String,
    pub pod_uid: String,
    pub token: String,
}

#[derive(Debug, Default)]
struct MapState {
    secrets: BTreeMap<(String, String), Secret>,
    config_maps: BTreeMap<(String, String), ConfigMap>,
    grants: Vec<TokenGrant>,
    /// When set, every call fails with this transport error, to stand for an unreachable API.
    unreachable: Option<String>,
}

/// Objects held in memory, for tests. Tokens are `token-<sa>-<n>` with a counter, so a test
/// can tell a fresh token from an old one.
#[derive(Debug, Default)]
pub struct MapSource {
    state: Mutex<MapState>,
    next_token: AtomicU64,
}

impl MapSource {
    /// Adds or replaces a Secret (by its metadata's namespace and name).
    pub fn put_secret(&self, secret: Secret) {
        let key =
            (secret.metadata.namespace.clone().unwrap_or_default(), secret.metadata.name.clone().unwrap_or_default());
        self.state.lock().secrets.insert(key, secret);
    }

    /// Adds or replaces a ConfigMap (by its metadata's namespace and name).
    pub fn put_config_map(&self, config_map: ConfigMap) {
        let key = (
            config_map.metadata.namespace.clone().unwrap_or_default(),
            config_map.metadata.name.clone().unwrap_or_default(),
        );
        self.state.lock().config_maps.insert(key, config_map);
    }

    pub fn remove_secret(&self, namespace: &str, name: &str) {
        self.state.lock().secrets.remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn remove_config_map(&self, namespace: &str, name: &str) {
        self.state.lock().config_maps.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Makes every later call fail with a transport error (`Some`), or work again (`None`).
    pub fn set_unreachable(&self, message: Option<&str>) {
        self.state.lock().unreachable = message.map(str::to_owned);
    }

    /// The tokens handed out so far, oldest first.
    pub fn token_grants(&self) -> Vec<TokenGrant> {
        self.state.lock().grants.clone()
    }

    fn check_reachable(state: &MapState) -> Result<(), SourceError> {
        match &state.unreachable {
            Some(message) => Err(SourceError::Transport(message.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl ObjectSource for MapSource {
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        let state = self.state.lock();
        Self::check_reachable(&state)?;
        Ok(state.secrets.get(&(namespace.to_owned(), name.to_owned())).cloned())
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        let state = self.state.lock();
        Self::check_reachable(&state)?;
        Ok(state.config_maps.get(&(namespace.to_owned(), name.to_owned())).cloned())
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        expiration_seconds: i64,
        pod_name: &str,
        pod_uid: &str,
    ) -> Result<String, SourceError> {
        let mut state = self.state.lock();
        Self::check_reachable(&state)?;
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = format!("token-{service_account}-{n}");
        state.grants.push(TokenGrant {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            audiences: audiences.to_vec(),
            expiration_seconds,
            pod_name: pod_name.to_owned(),
            pod_uid: pod_uid.to_owned(),
            token: token.clone(),
        });
        Ok(token)
    }
}
