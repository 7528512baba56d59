//! The verbs on resources: get, list, create, update, patch, delete, deletecollection,
//! and the status, scale and binding subresources. Watch is in `watch.rs`.
//!
//! Every mutation follows the same path as upstream's generic registry: decode, check the
//! type meta and the namespace, run the strategy (prepare, default, validate), then write
//! with a revision precondition. Conflicts on unconditional writes and patches are retried
//! from fresh state, so a client only sees 409 when it asked for a precondition.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use rkube_apimachinery::patch;
use rkube_apimachinery::selector::{FieldSelector, LabelSelector};
use rkube_store::{ContinueToken, ListOptions, Revision, Store};
use serde_json::{Value, json};

use crate::body::{self, Accept, Body};
use crate::cache::WatchCache;
use crate::error::{ApiError, Target};
use crate::fieldmanager;
use crate::meta;
use crate::printers;
use crate::registry::{self, Resource, Subresource};
use crate::resources::prune_fields;
use crate::route::{Query, ResourceRoute};

/// How many times a write that lost a race is retried from fresh state.
const MAX_RETRIES: usize = 16;
/// How long a consistent list waits for the watch cache to catch up with the store.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// What the handlers need: the store for writes and quorum reads, the cache for lists and watches.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub services: Arc<crate::services::Allocators>,
    /// Signs and verifies service-account tokens (`serviceaccounts/<name>/token`).
    pub tokens: Arc<crate::serviceaccount::Signer>,
}

/// One request to a resource, already routed and authenticated.
pub struct Request {
    pub method: Method,
    pub route: ResourceRoute,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    fn target(&self) -> Target {
        Target::new(self.route.resource.group, self.route.resource.resource, self.route.name.as_deref().unwrap_or(""))
    }

    fn key(&self) -> String {
        self.route.resource.key(self.route.namespace.as_deref(), self.route.name.as_deref().unwrap_or(""))
    }

    fn dry_run(&self) -> bool {
        self.query.all("dryRun").contains(&"All")
    }
}

/// Field validation, from the `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(q: &Query) -> Result<FieldValidation, ApiError> {
    match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {other}. Supported values are Ignore, Warn, Strict"
        ))),
    }
}

impl Api {
    pub async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let r = &req.route;
        match (&req.method, r.name.is_some(), r.subresource) {
            (&Method::GET, false, None) if req.query.flag("watch") => crate::watch::serve(self, &req).await,
            (&Method::GET, false, None) => self.list(&req).await,
            (&Method::GET, true, None | Some(Subresource::Status)) => self.get(&req).await,
            (&Method::GET, true, Some(Subresource::Scale)) => self.get_scale(&req).await,
            (&Method::POST, false, None) => self.create(&req).await,
            (&Method::POST, true, Some(Subresource::Binding)) => self.bind(&req).await,
            (&Method::POST, true, Some(Subresource::Token)) => {
                crate::serviceaccount::create_token(self, &self.tokens, &req).await
            }
            (&Method::PUT, true, None | Some(Subresource::Status)) => self.update(&req).await,
            (&Method::PUT, true, Some(Subresource::Finalize)) => self.finalize(&req).await,
            (&Method::PUT | &Method::PATCH, true, Some(Subresource::Scale)) => self.update_scale(&req).await,
            (&Method::PATCH, true, None | Some(Subresource::Status)) => self.patch(&req).await,
            (&Method::DELETE, true, None) => self.delete(&req).await,
            (&Method::DELETE, false, None) => self.delete_collection(&req).await,
            (_, true, Some(Subresource::Log | Subresource::Exec | Subresource::Attach)) => Err(ApiError::bad_request(
                format!("pod {:?} does not have a host assigned", r.name.as_deref().unwrap_or("")),
            )),
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    // === Reads ===

    /// Reads one object from the store (a quorum read, as upstream does by default).
    pub async fn read(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        let key = resource.key(namespace, name);
        let kv = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(Target::new(resource.group, resource.resource, name)))?;
        let mut obj: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("stored object {key} does not decode: {e}")))?;
        meta::set_resource_version(&mut obj, kv.mod_revision);
        Ok((obj, kv.mod_revision))
    }

    async fn get(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let r = &req.route;
        let (obj, _) = self.read(r.resource, r.namespace.as_deref(), r.name.as_deref().unwrap_or("")).await?;
        respond_object(StatusCode::OK, r.resource, obj, accept, &req.query)
    }

    async fn list(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let resource = req.route.resource;
        let filter = Filter::from_query(resource, &req.query)?;
        let limit = match req.query.get("limit") {
            None | Some("") => 0,
            Some(l) => l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.max(0),
        };
        let list_prefix = resource.list_prefix(req.route.namespace.as_deref());
        let (rev, items, continue_token, remaining) = match req.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let token = ContinueToken::decode(token).map_err(|_| {
                    ApiError::bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
                    )
                })?;
                let (rev, items, next, remaining) = self.list_from_store(&list_prefix, &filter, limit, token).await?;
                (rev, items.into_iter().map(Arc::new).collect(), next, remaining)
            }
            None => {
                let rv = req.query.get("resourceVersion").unwrap_or("");
                if rv != "0" {
                    // A consistent read: the cache must have caught up with the store.
                    let wanted = match rv.parse::<Revision>() {
                        Ok(n) if n > 0 => n,
                        _ => self.store.current_revision().await?,
                    };
                    self.cache.wait_fresh(wanted, FRESHNESS_TIMEOUT).await.map_err(|_| ApiError::Timeout {
                        message: format!("Too large resource version: {wanted}, current: {}", self.cache.revision()),
                    })?;
                }
                let (rev, all) = self.cache.list(&resource.prefix(), &list_prefix);
                let mut matched = Vec::new();
                let mut next = None;
                let mut remaining = None;
                for (i, obj) in all.iter().enumerate() {
                    if !filter.matches(obj) {
                        continue;
                    }
                    if limit > 0 && matched.len() as i64 == limit {
                        // More items follow: hand out a token at this snapshot's revision.
                        let last = matched.last().map(|o: &Arc<Value>| resource.key(meta::namespace(o), meta::name(o)));
                        next = last.map(|k| ContinueToken { revision: rev, start: format!("{k}\0") }.encode());
                        if filter.is_empty() {
                            remaining = Some((all.len() - i) as i64);
                        }
                        break;
                    }
                    // Shared, not copied: the response is encoded straight from the cache's objects.
                    matched.push(obj.clone());
                }
                (rev, matched, next, remaining)
            }
        };
        match accept {
            Accept::Json => {
                let list = ListOut {
                    kind: resource.list_kind,
                    api_version: resource.api_version(),
                    metadata: list_meta(rev, continue_token.as_deref(), remaining),
                    items: items.iter().map(|o| &**o).collect(),
                };
                let bytes = serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(body::bytes_response(StatusCode::OK, body::JSON, Bytes::from(bytes)))
            }
            Accept::Table => {
                let mut opts = table_options(&req.query)?;
                opts.list_resource_version = Some(rev.to_string());
                opts.continue_token = continue_token;
                opts.remaining = remaining;
                let items: Vec<Value> = items.iter().map(|o| (**o).clone()).collect();
                let table = printers::table_for(resource.kind, &items, &opts);
                Ok(body::bytes_response(StatusCode::OK, body::TABLE_CONTENT_TYPE, Bytes::from(table.to_string())))
            }
        }
    }

    /// Continues a paginated list from the store, at the revision of its first page.
    async fn list_from_store(
        &self,
        list_prefix: &str,
        filter: &Filter,
        limit: i64,
        token: ContinueToken,
    ) -> Result<(Revision, Vec<Value>, Option<String>, Option<i64>), ApiError> {
        let mut items = Vec::new();
        let mut options =
            ListOptions { limit: if limit > 0 { limit } else { 500 }, continue_token: Some(token), revision: None };
        loop {
            let page = self.store.list(list_prefix, options.clone()).await.map_err(|e| match e {
                rkube_store::Error::Compacted { .. } => ApiError::Gone {
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                },
                other => other.into(),
            })?;
            let mut last_key = None;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let Ok(mut obj) = serde_json::from_slice::<Value>(&kv.value) else { continue };
                meta::set_resource_version(&mut obj, kv.mod_revision);
                if filter.matches(&obj) {
                    items.push(obj);
                }
                if limit > 0 && items.len() as i64 == limit {
                    break;
                }
            }
            let full = limit > 0 && items.len() as i64 == limit;
            match (&page.continue_token, full) {
                (Some(_), true) | (None, true) => {
                    // Stop here; the next page starts after the last key we looked at,
                    // unless the store says nothing follows it.
                    let more =
                        page.continue_token.is_some() || last_key.as_ref() != page.items.last().map(|kv| &kv.key);
                    let token = match (more, last_key) {
                        (true, Some(k)) => {
                            Some(ContinueToken { revision: page.revision, start: format!("{k}\0") }.encode())
                        }
                        _ => None,
                    };
                    return Ok((page.revision, items, token, None));
                }
                (Some(next), false) => options.continue_token = Some(next.clone()),
                (None, false) => return Ok((page.revision, items, None, None)),
            }
        }
    }

    // === Writes ===

    /// Decodes and checks a body for `resource`: type meta, unknown fields, namespace.
    fn decode_for_write(&self, req: &Request) -> Result<(Value, Vec<String>), ApiError> {
        let resource = req.route.resource;
        let decoded = body::decode_object(&req.headers, &req.body, (&resource.api_version(), resource.kind))?;
        let mut obj = decoded.object;
        check_type_meta(resource, &mut obj)?;
        check_namespace(req, &mut obj)?;
        let mut warnings = Vec::new();
        let mut unknown = decoded.unknown_fields;
        let typed_unknown = resource.strategy.check_types(&obj).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                resource.kind, resource.version, resource.kind
            ))
        })?;
        unknown.extend(typed_unknown);
        if !unknown.is_empty() {
            match field_validation(&req.query)? {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                        resource.kind,
                        resource.version,
                        resource.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|f| format!("unknown field {f:?}")));
                    prune_fields(&mut obj, &unknown);
                }
                FieldValidation::Ignore => prune_fields(&mut obj, &unknown),
            }
        } else {
            field_validation(&req.query)?;
        }
        Ok((obj, warnings))
    }

    async fn create(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let resource = req.route.resource;
        let (obj, warnings) = self.decode_for_write(req)?;
        let manager = field_manager(req);
        let (created, code) = self.create_object(resource, obj, req.dry_run(), Some(&manager)).await?;
        let mut resp = respond_object(code, resource, created, accept, &req.query)?;
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    /// Creates an already-decoded object. Used by the create verb and by server-side seeding.
    /// `manager` records field ownership; `None` keeps the `managedFields` the caller computed
    /// (server-side apply does).
    pub async fn create_object(
        &self,
        resource: &Resource,
        mut obj: Value,
        dry_run: bool,
        manager: Option<&str>,
    ) -> Result<(Value, StatusCode), ApiError> {
        if !meta::resource_version(&obj).is_empty() {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        if resource.namespaced {
            self.check_namespace_open(meta::namespace(&obj).unwrap_or("")).await?;
        }
        // Only a generateName lets the server pick the name; with neither, validation says so.
        let generate =
            meta::name(&obj).is_empty() && !obj["metadata"]["generateName"].as_str().unwrap_or("").is_empty();
        let strategy = resource.strategy;
        {
            let m = meta::metadata_mut(&mut obj);
            for f in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
                m.remove(f);
            }
            if manager.is_some() {
                m.remove("managedFields");
            }
            m.insert("uid".into(), Value::from(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), Value::from(meta::now_rfc3339()));
            if strategy.has_status_subresource() && obj_has_spec(resource) {
                m.insert("generation".into(), Value::from(1));
            } else {
                m.remove("generation");
            }
        }
        strategy.prepare_for_create(&mut obj);
        strategy.default(&mut obj);
        if is_pod(resource) {
            // Upstream's ServiceAccount admission plugin, after defaulting as admission runs.
            crate::serviceaccount::admit(self, &mut obj).await?;
        }
        if let Some(manager) = manager {
            let now = meta::now_rfc3339();
            fieldmanager::record_update(&mut obj, None, manager, "", patch::schema_for_kind(resource.kind), &now);
        }
        let held = if is_service(resource) { Some(self.services.admit_create(&mut obj).await?) } else { None };
        let result = self.store_new_object(resource, obj, generate, dry_run).await;
        if let Some(held) = held {
            // Nothing stored: give back what was allocated (a dry run never keeps anything).
            if result.is_err() || dry_run {
                self.services.release(&held).await;
            }
        }
        result
    }

    async fn store_new_object(
        &self,
        resource: &Resource,
        mut obj: Value,
        generate: bool,
        dry_run: bool,
    ) -> Result<(Value, StatusCode), ApiError> {
        let strategy = resource.strategy;
        for attempt in 0..MAX_RETRIES {
            if generate {
                let base = obj["metadata"]["generateName"].as_str().unwrap_or("").to_owned();
                meta::metadata_mut(&mut obj)
                    .insert("name".into(), Value::from(format!("{base}{}", meta::random_suffix(5))));
            }
            let errs = strategy.validate(&obj, None);
            if !errs.is_empty() {
                return Err(ApiError::invalid(
                    Target::new(resource.group, resource.resource, meta::name(&obj)),
                    resource.kind,
                    errs,
                ));
            }
            if dry_run {
                return Ok((obj, StatusCode::CREATED));
            }
            let key = resource.key(meta::namespace(&obj), meta::name(&obj));
            let bytes = encode(&obj)?;
            match self.store.create(&key, bytes).await {
                Ok(rev) => {
                    meta::set_resource_version(&mut obj, rev);
                    return Ok((obj, StatusCode::CREATED));
                }
                Err(rkube_store::Error::AlreadyExists { .. }) if generate && attempt + 1 < MAX_RETRIES => continue,
                Err(rkube_store::Error::AlreadyExists { .. }) => {
                    return Err(ApiError::AlreadyExists(Target::new(
                        resource.group,
                        resource.resource,
                        meta::name(&obj),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Upstream's NamespaceLifecycle admission: no new objects in a missing or terminating namespace.
    async fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let namespaces = registry::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
        let (obj, _) = self.read(namespaces, None, ns).await?;
        if meta::deletion_timestamp(&obj).is_some() || obj["status"]["phase"] == "Terminating" {
            return Err(ApiError::Forbidden {
                message: format!("unable to create new content in namespace {ns} because it is being terminated"),
            });
        }
        Ok(())
    }

    async fn update(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let (obj, warnings) = self.decode_for_write(req)?;
        let name = req.route.name.as_deref().unwrap_or("");
        if meta::name(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&obj)
            )));
        }
        let precondition = meta::resource_version(&obj).parse::<Revision>().ok();
        let status_only = req.route.subresource == Some(Subresource::Status);
        let dry_run = req.dry_run();
        let ownership = Ownership::Update(field_manager(req));
        let updated =
            self.guaranteed_update(req, precondition, |_cur| Ok(obj.clone()), status_only, dry_run, ownership).await?;
        let mut resp = respond_object(StatusCode::OK, req.route.resource, updated, accept, &req.query)?;
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    async fn patch(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let resource = req.route.resource;
        let ct = body::content_type(&req.headers);
        let patch_doc = match ct.as_str() {
            "application/apply-patch+yaml" => body::decode_yaml(&req.body)?,
            "application/json-patch+json"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json" => body::decode_json(&req.body)?,
            _ => {
                return Err(ApiError::UnsupportedMediaType {
                    accepted: "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml".into(),
                });
            }
        };
        field_validation(&req.query)?;
        if ct == "application/apply-patch+yaml" {
            return self.apply(req, patch_doc, accept).await;
        }
        if ct == "application/json-patch+json" && patch_doc.as_array().is_some_and(|ops| ops.len() > 10_000) {
            return Err(ApiError::RequestEntityTooLarge { limit: body::MAX_BODY_BYTES });
        }
        let status_only = req.route.subresource == Some(Subresource::Status);
        let kind = resource.kind;
        let apply = |cur: &Value| -> Result<Value, ApiError> {
            let patched = match ct.as_str() {
                "application/json-patch+json" => patch::apply_json_patch(cur, &patch_doc),
                "application/merge-patch+json" => Ok(patch::apply_merge_patch(cur, &patch_doc)),
                _ => patch::apply_strategic_merge_patch(cur, &patch_doc, patch::schema_for_kind(kind)),
            };
            patched.map_err(|e| {
                if e.is_bad_request() {
                    ApiError::bad_request(e.to_string())
                } else {
                    ApiError::invalid(
                        req.target(),
                        kind,
                        vec![crate::error::FieldError::invalid("", &Value::Null, &e.to_string())],
                    )
                }
            })
        };
        // A patch may carry a resourceVersion precondition of its own.
        let precondition = patch_doc["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok());
        let ownership = Ownership::Update(field_manager(req));
        let updated = self.guaranteed_update(req, precondition, apply, status_only, req.dry_run(), ownership).await?;
        respond_object(StatusCode::OK, resource, updated, accept, &req.query)
    }

    /// Server-side apply: create the object if it does not exist, otherwise merge the applied
    /// configuration into it, with field ownership and conflicts (see `fieldmanager.rs`).
    async fn apply(&self, req: &Request, applied: Value, accept: Accept) -> Result<Response<Body>, ApiError> {
        let resource = req.route.resource;
        let manager = req.query.get("fieldManager").unwrap_or("").to_owned();
        if manager.is_empty() {
            return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml requires a non-empty fieldManager"));
        }
        let force = req.query.get("force") == Some("true");
        let mut applied = applied;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the applied configuration must be an object"));
        }
        check_type_meta(resource, &mut applied)?;
        check_namespace(req, &mut applied)?;
        let name = req.route.name.as_deref().unwrap_or("");
        if meta::name(&applied).is_empty() {
            meta::metadata_mut(&mut applied).insert("name".into(), Value::from(name));
        } else if meta::name(&applied) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&applied)
            )));
        }
        let schema = patch::schema_for_kind(resource.kind);
        let conflict_error = |conflicts: Vec<fieldmanager::Conflict>| {
            let list: Vec<String> = conflicts
                .iter()
                .map(|c| format!("conflict with {:?} using {}: {}", c.manager, c.api_version, c.path))
                .collect();
            let n = conflicts.len();
            ApiError::Conflict {
                target: req.target(),
                message: format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    list.join("\n")
                ),
            }
        };
        match self.read(resource, req.route.namespace.as_deref(), name).await {
            Err(ApiError::NotFound(_)) => {
                let mut obj = applied.clone();
                let now = meta::now_rfc3339();
                fieldmanager::apply(&mut obj, None, &applied, &manager, force, schema, &now).map_err(conflict_error)?;
                let (created, code) = self.create_object(resource, obj, req.dry_run(), None).await?;
                respond_object(code, resource, created, accept, &req.query)
            }
            Err(e) => Err(e),
            Ok(_) => {
                let merge = |cur: &Value| {
                    let mut merged = patch::apply_strategic_merge_patch(cur, &applied, schema)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    let now = meta::now_rfc3339();
                    fieldmanager::apply(&mut merged, Some(cur), &applied, &manager, force, schema, &now)
                        .map_err(conflict_error)?;
                    Ok(merged)
                };
                let updated =
                    self.guaranteed_update(req, None, merge, false, req.dry_run(), Ownership::Applied).await?;
                respond_object(StatusCode::OK, resource, updated, accept, &req.query)
            }
        }
    }

    /// Reads the object, computes the new one with `mutate`, and writes it with the read
    /// revision as precondition; on a lost race, starts again from fresh state, unless the
    /// client gave its own `precondition`, in which case it gets 409.
    async fn guaranteed_update<F>(
        &self,
        req: &Request,
        precondition: Option<Revision>,
        mutate: F,
        status_only: bool,
        dry_run: bool,
        ownership: Ownership,
    ) -> Result<Value, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        let resource = req.route.resource;
        let name = req.route.name.as_deref().unwrap_or("");
        let key = req.key();
        for _ in 0..MAX_RETRIES {
            let (cur, rev) = self.read(resource, req.route.namespace.as_deref(), name).await?;
            if precondition.is_some_and(|p| p != rev) {
                return Err(conflict(req.target()));
            }
            let mut new = mutate(&cur)?;
            check_type_meta(resource, &mut new)?;
            if meta::name(&new) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&new)
                )));
            }
            if let Err(e) = resource.strategy.check_types(&new) {
                return Err(ApiError::bad_request(format!(
                    "{} in version {:?} cannot be handled as a {}: {e}",
                    resource.kind, resource.version, resource.kind
                )));
            }
            let mut new = self.prepare_update(resource, new, &cur, status_only)?;
            match &ownership {
                Ownership::Update(manager) => {
                    let sub = if status_only { "status" } else { "" };
                    let now = meta::now_rfc3339();
                    let schema = patch::schema_for_kind(resource.kind);
                    fieldmanager::record_update(&mut new, Some(&cur), manager, sub, schema, &now);
                }
                // The apply already recorded ownership in the object it produced.
                Ownership::Applied => {}
            }
            // Services: carry allocations across the update, allocate what a type change needs.
            let (got, dropped) = if is_service(resource) && !status_only {
                self.services.admit_update(&mut new, &cur).await?
            } else {
                Default::default()
            };
            let outcome = self.write_update(req, resource, &key, new, &cur, rev, precondition, dry_run).await;
            match &outcome {
                Ok(Some(_)) if !dry_run => self.services.release(&dropped).await,
                _ => self.services.release(&got).await,
            }
            match outcome {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::Conflict { target: req.target(), message: "too many concurrent updates; try again".into() })
    }

    /// Writes one prepared update. `Ok(None)` means the write lost a race and should be retried.
    #[allow(clippy::too_many_arguments)] // One caller; these are the loop's state.
    async fn write_update(
        &self,
        req: &Request,
        resource: &Resource,
        key: &str,
        new: Value,
        cur: &Value,
        rev: Revision,
        precondition: Option<Revision>,
        dry_run: bool,
    ) -> Result<Option<Value>, ApiError> {
        {
            // A write that changes nothing is not written, as upstream does, so that repeated
            // applies and idempotent controllers do not churn revisions.
            if strip_rv(&new) == strip_rv(cur) {
                return Ok(Some(cur.clone()));
            }
            if dry_run {
                return Ok(Some(new));
            }
            // Removing the last finalizer from an object that is being deleted deletes it.
            if meta::deletion_timestamp(&new).is_some()
                && meta::finalizers(&new).is_empty()
                && !namespace_finalizing(resource, &new)
                && !pod_awaiting_kubelet(resource, &new)
            {
                match self.store.delete(key, Some(rev)).await {
                    Ok((_, del_rev)) => {
                        self.after_delete(resource, cur).await;
                        let mut gone = new;
                        meta::set_resource_version(&mut gone, del_rev);
                        return Ok(Some(gone));
                    }
                    Err(rkube_store::Error::Conflict { .. }) if precondition.is_none() => return Ok(None),
                    Err(rkube_store::Error::Conflict { .. }) => return Err(conflict(req.target())),
                    Err(e) => return Err(e.into()),
                }
            }
            match self.store.update(key, encode(&new)?, rev).await {
                Ok(new_rev) => {
                    let mut out = new;
                    meta::set_resource_version(&mut out, new_rev);
                    Ok(Some(out))
                }
                Err(rkube_store::Error::Conflict { .. }) if precondition.is_none() => Ok(None),
                Err(rkube_store::Error::Conflict { .. }) => Err(conflict(req.target())),
                Err(rkube_store::Error::NotFound { .. }) => Err(ApiError::NotFound(req.target())),
                Err(e) => Err(e.into()),
            }
        }
    }

    /// What must happen once an object is really gone from the store.
    async fn after_delete(&self, resource: &Resource, obj: &Value) {
        if is_service(resource) {
            self.services.release(&crate::services::holdings(obj)).await;
        }
    }

    /// Carries over what an update may not change, splits spec from status, bumps the
    /// generation, defaults and validates.
    fn prepare_update(
        &self,
        resource: &Resource,
        mut new: Value,
        cur: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let strategy = resource.strategy;
        if status_only {
            // The status subresource changes the status and nothing else.
            let mut out = cur.clone();
            if let Some(map) = out.as_object_mut() {
                map.insert("status".into(), new.get("status").cloned().unwrap_or(json!({})));
            }
            new = out;
        } else if strategy.has_status_subresource()
            && let Some(map) = new.as_object_mut()
        {
            match cur.get("status") {
                Some(s) => map.insert("status".into(), s.clone()),
                None => map.remove("status"),
            };
        }
        {
            let cur_meta = &cur["metadata"];
            let m = meta::metadata_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cur_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
        }
        if !status_only {
            strategy.prepare_for_update(&mut new, cur);
        }
        strategy.default(&mut new);
        if strategy.has_status_subresource()
            && obj_has_spec(resource)
            && !status_only
            && new.get("spec") != cur.get("spec")
        {
            let generation = cur["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), Value::from(generation));
        }
        let errs = strategy.validate(&new, Some(cur));
        if !errs.is_empty() {
            return Err(ApiError::invalid(
                Target::new(resource.group, resource.resource, meta::name(&new)),
                resource.kind,
                errs,
            ));
        }
        Ok(new)
    }

    async fn delete(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let options = DeleteOptions::from_request(req)?;
        let resource = req.route.resource;
        let name = req.route.name.as_deref().unwrap_or("").to_owned();
        let obj = self.delete_object(resource, req.route.namespace.as_deref(), &name, &options, req.dry_run()).await?;
        respond_object(StatusCode::OK, resource, obj, accept, &req.query)
    }

    /// Deletes one object as upstream's registry does: graceful for pods on a node, through
    /// finalizers when the object has any (or the propagation policy adds one), else at once.
    pub async fn delete_object(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = resource.key(namespace, name);
        let target = Target::new(resource.group, resource.resource, name);
        for _ in 0..MAX_RETRIES {
            let (cur, rev) = self.read(resource, namespace, name).await?;
            if let Some(uid) = &options.precondition_uid
                && uid != meta::uid(&cur)
            {
                return Err(ApiError::Conflict {
                    target,
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&cur)
                    ),
                });
            }
            if let Some(want) = options.precondition_rv
                && want != rev
            {
                return Err(ApiError::Conflict {
                    target,
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                    ),
                });
            }
            let mut finalizers = meta::finalizers(&cur);
            match options.propagation.as_deref() {
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => finalizers.push("orphan".into()),
                _ => {}
            }
            let is_namespace = resource.resource == "namespaces" && resource.group.is_empty();
            let graceful_pod = resource.resource == "pods"
                && resource.group.is_empty()
                && !cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
                && !matches!(cur["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                && options
                    .grace_period
                    .unwrap_or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30))
                    > 0;
            let namespace_finalizing =
                is_namespace && cur["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
            let needs_mark = !finalizers.is_empty() || graceful_pod || namespace_finalizing;
            if dry_run {
                return Ok(cur);
            }
            if needs_mark {
                if meta::deletion_timestamp(&cur).is_some() && meta::finalizers(&cur) == finalizers {
                    // Already being deleted; nothing more to record.
                    return Ok(cur);
                }
                let mut marked = cur.clone();
                let grace = if graceful_pod {
                    options
                        .grace_period
                        .unwrap_or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30))
                } else {
                    0
                };
                {
                    let m = meta::metadata_mut(&mut marked);
                    if m.get("deletionTimestamp").is_none() {
                        let ts = jiff::Timestamp::now()
                            .checked_add(jiff::SignedDuration::from_secs(grace))
                            .unwrap_or(jiff::Timestamp::now());
                        let ts = jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts);
                        m.insert(
                            "deletionTimestamp".into(),
                            Value::from(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                        );
                        m.insert("deletionGracePeriodSeconds".into(), Value::from(grace));
                    }
                    m.insert("finalizers".into(), json!(finalizers));
                    if finalizers.is_empty() {
                        m.remove("finalizers");
                    }
                }
                if is_namespace && let Some(map) = marked.as_object_mut() {
                    map.insert("status".into(), json!({"phase": "Terminating"}));
                }
                match self.store.update(&key, encode(&marked)?, rev).await {
                    Ok(new_rev) => {
                        meta::set_resource_version(&mut marked, new_rev);
                        return Ok(marked);
                    }
                    Err(rkube_store::Error::Conflict { .. }) => continue,
                    Err(rkube_store::Error::NotFound { .. }) => return Err(ApiError::NotFound(target)),
                    Err(e) => return Err(e.into()),
                }
            }
            match self.store.delete(&key, Some(rev)).await {
                Ok((_, del_rev)) => {
                    self.after_delete(resource, &cur).await;
                    let mut gone = cur;
                    meta::set_resource_version(&mut gone, del_rev);
                    return Ok(gone);
                }
                Err(rkube_store::Error::Conflict { .. }) => continue,
                Err(rkube_store::Error::NotFound { .. }) => return Err(ApiError::NotFound(target)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict { target, message: "too many concurrent updates; try again".into() })
    }

    async fn delete_collection(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let resource = req.route.resource;
        let options = DeleteOptions::from_request(req)?;
        let filter = Filter::from_query(resource, &req.query)?;
        let rev = self.store.current_revision().await?;
        self.cache
            .wait_fresh(rev, FRESHNESS_TIMEOUT)
            .await
            .map_err(|_| ApiError::Timeout { message: "the watch cache is behind".into() })?;
        let (_, all) = self.cache.list(&resource.prefix(), &resource.list_prefix(req.route.namespace.as_deref()));
        let mut deleted = Vec::new();
        for obj in all.iter().filter(|o| filter.matches(o)) {
            match self.delete_object(resource, meta::namespace(obj), meta::name(obj), &options, req.dry_run()).await {
                Ok(o) => deleted.push(o),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "kind": resource.list_kind,
            "apiVersion": resource.api_version(),
            "metadata": {"resourceVersion": self.cache.revision().to_string()},
            "items": deleted,
        });
        Ok(body::json_response(StatusCode::OK, &list))
    }

    // === Subresources ===

    /// `PUT namespaces/<name>/finalize`: only `spec.finalizers` changes. A terminating
    /// namespace whose finalizers are all gone is deleted by the write.
    async fn finalize(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let accept = body::negotiate(&req.headers)?;
        let (obj, _) = self.decode_for_write(req)?;
        let finalizers = obj["spec"]["finalizers"].clone();
        let precondition = meta::resource_version(&obj).parse::<Revision>().ok();
        let mutate = |cur: &Value| -> Result<Value, ApiError> {
            let mut out = cur.clone();
            if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
                if finalizers.is_null() {
                    spec.remove("finalizers");
                } else {
                    spec.insert("finalizers".into(), finalizers.clone());
                }
            }
            Ok(out)
        };
        let ownership = Ownership::Update(field_manager(req));
        let updated = self.guaranteed_update(req, precondition, mutate, false, req.dry_run(), ownership).await?;
        respond_object(StatusCode::OK, req.route.resource, updated, accept, &req.query)
    }

    async fn get_scale(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let r = &req.route;
        let (obj, _) = self.read(r.resource, r.namespace.as_deref(), r.name.as_deref().unwrap_or("")).await?;
        Ok(body::json_response(StatusCode::OK, &scale_of(&obj)))
    }

    async fn update_scale(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let ct = body::content_type(&req.headers);
        let doc = body::decode_json(&req.body)?;
        let is_put = req.method == Method::PUT;
        let precondition =
            if is_put { doc["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()) } else { None };
        let mutate = |cur: &Value| -> Result<Value, ApiError> {
            let scale = scale_of(cur);
            let new_scale = if is_put {
                doc.clone()
            } else {
                match ct.as_str() {
                    "application/json-patch+json" => {
                        patch::apply_json_patch(&scale, &doc).map_err(|e| ApiError::bad_request(e.to_string()))?
                    }
                    _ => patch::apply_merge_patch(&scale, &doc),
                }
            };
            let replicas = new_scale["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    req.target(),
                    "Scale",
                    vec![crate::error::FieldError::invalid(
                        "spec.replicas",
                        &Value::from(replicas),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut out = cur.clone();
            if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), Value::from(replicas));
            }
            Ok(out)
        };
        let ownership = Ownership::Update(field_manager(req));
        let updated = self.guaranteed_update(req, precondition, mutate, false, req.dry_run(), ownership).await?;
        Ok(body::json_response(StatusCode::OK, &scale_of(&updated)))
    }

    async fn bind(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let binding = body::decode_object(&req.headers, &req.body, ("v1", "Binding"))?.object;
        let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
        if node.is_empty() {
            return Err(ApiError::invalid(
                req.target(),
                "Binding",
                vec![crate::error::FieldError::required("target.name", "")],
            ));
        }
        let name = req.route.name.as_deref().unwrap_or("").to_owned();
        let mutate = |cur: &Value| -> Result<Value, ApiError> {
            let assigned = cur["spec"]["nodeName"].as_str().unwrap_or("");
            if !assigned.is_empty() {
                return Err(ApiError::Conflict {
                    target: req.target(),
                    message: format!("pod {name} is already assigned to node {assigned:?}"),
                });
            }
            if meta::deletion_timestamp(cur).is_some() {
                return Err(ApiError::Conflict {
                    target: req.target(),
                    message: format!("pod {name} is being deleted, cannot be assigned to a host"),
                });
            }
            let mut out = cur.clone();
            out["spec"]["nodeName"] = Value::from(node.as_str());
            set_condition(&mut out, "PodScheduled", "True", None, None);
            Ok(out)
        };
        // Binding changes spec and status together, so it bypasses the spec/status split.
        let resource = req.route.resource;
        for _ in 0..MAX_RETRIES {
            let (cur, rev) = self.read(resource, req.route.namespace.as_deref(), &name).await?;
            let new = mutate(&cur)?;
            match self.store.update(&req.key(), encode(&new)?, rev).await {
                Ok(_) => {
                    let status =
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
                    return Ok(body::json_response(StatusCode::CREATED, &status));
                }
                Err(rkube_store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict(req.target()))
    }
}

/// Sets a pod condition, keeping the others.
pub fn set_condition(pod: &mut Value, ty: &str, status: &str, reason: Option<&str>, message: Option<&str>) {
    let now = meta::now_rfc3339();
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conds) = pod["status"]["conditions"].as_array_mut() else { return };
    let mut cond = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        cond["reason"] = Value::from(r);
    }
    if let Some(m) = message {
        cond["message"] = Value::from(m);
    }
    match conds.iter_mut().find(|c| c["type"] == ty) {
        Some(existing) => {
            if existing["status"] == status {
                cond["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = cond;
        }
        None => conds.push(cond),
    }
}

/// How a write records field ownership.
enum Ownership {
    /// An ordinary write by this manager: it takes the fields it changed.
    Update(String),
    /// Server-side apply already recorded ownership in the object it produced.
    Applied,
}

/// The field manager of a request: `fieldManager`, or, as upstream does, the first part of
/// the User-Agent (`kubectl/v1.33.1 (linux/amd64)` → `kubectl`).
fn field_manager(req: &Request) -> String {
    if let Some(m) = req.query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.chars().take(128).collect();
    }
    req.headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

fn is_service(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.resource == "services"
}

fn is_pod(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.resource == "pods"
}

fn obj_has_spec(resource: &Resource) -> bool {
    !matches!(resource.kind, "Namespace" | "Node" | "Pod" | "Service")
}

/// A terminating namespace stays until its own `spec.finalizers` are empty as well.
fn namespace_finalizing(resource: &Resource, obj: &Value) -> bool {
    resource.group.is_empty()
        && resource.resource == "namespaces"
        && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
}

fn pod_awaiting_kubelet(_resource: &Resource, _obj: &Value) -> bool {
    false
}

fn conflict(target: Target) -> ApiError {
    ApiError::Conflict {
        target,
        message: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let mut stored = obj.clone();
    // The revision is the resourceVersion; storing it as well would only let them disagree.
    if let Some(m) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&stored).map(Bytes::from).map_err(|e| ApiError::internal(e.to_string()))
}

fn check_type_meta(resource: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = resource.api_version();
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the body is not an object"))?;
    let av = map.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("").to_owned();
    if !av.is_empty() && av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if !kind.is_empty() && kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {:?} cannot be handled as a {}: no kind {kind:?} is registered for version {want_av:?}",
            resource.version, resource.kind
        )));
    }
    map.insert("apiVersion".into(), Value::from(want_av));
    map.insert("kind".into(), Value::from(resource.kind));
    Ok(())
}

fn check_namespace(req: &Request, obj: &mut Value) -> Result<(), ApiError> {
    let resource = req.route.resource;
    let m = meta::metadata_mut(obj);
    if !resource.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let path_ns = req.route.namespace.as_deref().unwrap_or("");
    let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("").to_owned();
    if path_ns.is_empty() {
        return Err(ApiError::bad_request("the namespace of the object must be given in the URL"));
    }
    if !body_ns.is_empty() && body_ns != path_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    m.insert("namespace".into(), Value::from(path_ns));
    Ok(())
}

fn list_meta(rev: Revision, continue_token: Option<&str>, remaining: Option<i64>) -> Value {
    let mut m = json!({"resourceVersion": rev.to_string()});
    if let Some(c) = continue_token {
        m["continue"] = Value::from(c);
    }
    if let Some(r) = remaining {
        m["remainingItemCount"] = Value::from(r);
    }
    m
}

fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append("Warning", v);
        }
    }
}

pub fn table_options(q: &Query) -> Result<printers::TableOptions, ApiError> {
    let mut opts = printers::TableOptions::new(SystemTime::now());
    opts.include_object = printers::IncludeObject::from_query(q.get("includeObject"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(opts)
}

/// Renders one object as JSON or as a one-row Table.
pub fn respond_object(
    code: StatusCode,
    resource: &Resource,
    obj: Value,
    accept: Accept,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    match accept {
        Accept::Json => Ok(body::json_response(code, &obj)),
        Accept::Table => {
            let mut opts = table_options(q)?;
            opts.list_resource_version = Some(meta::resource_version(&obj).to_owned());
            let table = printers::table_for(resource.kind, std::slice::from_ref(&obj), &opts);
            Ok(body::bytes_response(code, body::TABLE_CONTENT_TYPE, Bytes::from(table.to_string())))
        }
    }
}

/// The `autoscaling/v1` Scale view of a Deployment or ReplicaSet.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector =
        LabelSelector::from_label_selector_json(&obj["spec"]["selector"]).map(|s| s.to_string()).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// A list response, encoded straight from borrowed objects.
#[derive(serde::Serialize)]
struct ListOut<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<Revision>,
}

impl DeleteOptions {
    fn from_request(req: &Request) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions::default();
        if !req.body.is_empty() {
            let v = match body::content_type(&req.headers).as_str() {
                crate::protobuf::CONTENT_TYPE => {
                    crate::protobuf::decode_expecting(&req.body, "meta.k8s.io/v1", "DeleteOptions")
                        .map_err(|e| ApiError::bad_request(format!("failed to decode DeleteOptions: {e}")))?
                        .object
                }
                _ => body::decode_json(&req.body)?,
            };
            if !v.is_object() {
                return Err(ApiError::bad_request("DeleteOptions must be an object"));
            }
            o.propagation = v["propagationPolicy"].as_str().map(str::to_owned);
            o.grace_period = v["gracePeriodSeconds"].as_i64();
            o.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_owned);
            o.precondition_rv = v["preconditions"]["resourceVersion"].as_str().and_then(|s| s.parse().ok());
            if v["orphanDependents"] == true && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
        }
        if let Some(p) = req.query.get("propagationPolicy") {
            o.propagation = Some(p.to_owned());
        }
        if let Some(g) = req.query.get("gracePeriodSeconds") {
            o.grace_period =
                Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?);
        }
        if req.query.get("orphanDependents") == Some("true") && o.propagation.is_none() {
            o.propagation = Some("Orphan".into());
        }
        if let Some(p) = &o.propagation
            && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
        {
            return Err(ApiError::invalid(
                Target::default(),
                "DeleteOptions",
                vec![crate::error::FieldError::not_supported(
                    "propagationPolicy",
                    &Value::from(p.as_str()),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ));
        }
        Ok(o)
    }
}

/// Label and field selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

/// The fields each kind can be selected on, beyond `metadata.name` and `metadata.namespace`.
fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Service" => &["spec.clusterIP", "spec.type"],
        "ReplicaSet" => &["status.replicas"],
        _ => &[],
    }
}

impl Filter {
    pub fn from_query(resource: &Resource, q: &Query) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let allowed = selectable_fields(resource.kind);
        for r in fields.requirements() {
            let f = r.field();
            if f != "metadata.name" && f != "metadata.namespace" && !allowed.contains(&f) {
                return Err(ApiError::bad_request(format!("field label not supported: {f}")));
            }
        }
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_json(meta::labels(obj)) && self.fields.matches(|f| field_value(obj, f))
    }
}

fn field_value(obj: &Value, field: &str) -> Option<String> {
    if field == "source" {
        return Some(obj["source"]["component"].as_str().unwrap_or("").to_owned());
    }
    let mut cur = obj;
    for part in field.split('.') {
        cur = &cur[part];
    }
    // Absent fields compare as their zero value, as upstream's field sets do: `spec.nodeName=`
    // finds unscheduled pods, and an absent `spec.unschedulable` is "false".
    Some(match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null if field == "spec.unschedulable" || field == "spec.hostNetwork" => "false".to_owned(),
        _ => String::new(),
    })
}
