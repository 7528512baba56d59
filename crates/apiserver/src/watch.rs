//! Watch: a stream of `{"type": ..., "object": ...}` lines, served from the watch cache.
//!
//! A watch starts either from a resourceVersion (replaying the cache's recent events after
//! it, or 410 Gone if they are no longer kept) or from "now" with synthetic ADDED events for
//! the current objects. Selectors are applied to transitions, as upstream does: an object
//! that stops matching is reported as DELETED, one that starts matching as ADDED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rkube_store::Revision;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::body::{self, Accept, Body};
use crate::cache::{CacheError, CacheEvent, EventType};
use crate::error::ApiError;
use crate::handlers::{Api, Filter, Request, table_options};
use crate::printers;
use crate::registry::Resource;

/// Upstream's default watch timeout is between 30 and 60 minutes; a fixed 30 is enough here.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

pub async fn serve(api: &Api, req: &Request) -> Result<Response<Body>, ApiError> {
    let accept = body::negotiate(&req.headers)?;
    let resource = req.route.resource;
    let filter = Filter::from_query(resource, &req.query)?;
    let list_prefix = resource.list_prefix(req.route.namespace.as_deref());
    let res_prefix = resource.prefix();
    let timeout = match req.query.get("timeoutSeconds") {
        Some(t) => {
            Duration::from_secs(t.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?)
        }
        None => DEFAULT_TIMEOUT,
    };
    let bookmarks = req.query.flag("allowWatchBookmarks");
    let send_initial = req.query.get("sendInitialEvents") == Some("true");
    let rv = req.query.get("resourceVersion").unwrap_or("");

    let (initial, after, rx, mut epoch) = if rv.is_empty() || rv == "0" || send_initial {
        if rv.is_empty() {
            let current = api.store.current_revision().await?;
            wait_fresh(api, current).await?;
        }
        let (rev, items, rx, epoch) = api.cache.subscribe_with_state(&res_prefix, &list_prefix).map_err(cache_error)?;
        let initial: Vec<(EventType, Arc<Value>, Option<Arc<CacheEvent>>)> =
            items.into_iter().filter(|o| filter.matches(o)).map(|o| (EventType::Added, o, None)).collect();
        (initial, rev, rx, epoch)
    } else {
        let from: Revision =
            rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
        let subscribed = match api.cache.subscribe(&res_prefix, from) {
            Err(CacheError::TooNew { .. }) => {
                wait_fresh(api, from).await?;
                api.cache.subscribe(&res_prefix, from)
            }
            other => other,
        };
        let (backlog, rev, rx, epoch) = match subscribed {
            // Upstream's watch cache answers a too-old resourceVersion with a 200 stream that
            // carries one ERROR event with a 410 Status; client-go and the Python client
            // expect exactly that and re-list.
            Err(e @ CacheError::TooOld { .. }) => return Ok(error_stream(accept, &cache_error(e))),
            other => other.map_err(cache_error)?,
        };
        let initial = backlog
            .iter()
            .filter_map(|ev| {
                translate(ev, &filter, &list_prefix).map(|(ty, _)| (ty, ev.object.clone(), Some(ev.clone())))
            })
            .collect();
        (initial, rev, rx, epoch)
    };
    epoch.borrow_and_update();

    let (tx, out) = mpsc::channel::<Bytes>(256);
    let mut encoder = Encoder { accept, resource, table_opts: table_options(&req.query)?, sent_headers: false };
    let initial_end = send_initial.then_some(after);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut rx = rx;
        let mut last_rev = after;
        for (ty, obj, shared) in initial {
            if tx.send(encoder.event(ty.as_str(), &obj, shared.as_deref())).await.is_err() {
                return;
            }
        }
        if let Some(rev) = initial_end
            && tx.send(encoder.bookmark(rev, true)).await.is_err()
        {
            return;
        }
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rev <= after || ev.resource_prefix != res_prefix {
                            continue;
                        }
                        last_rev = ev.rev;
                        if let Some((ty, _)) = translate(&ev, &filter, &list_prefix)
                            && tx.send(encoder.event(ty.as_str(), &ev.object, Some(&ev))).await.is_err() {
                                return;
                            }
                    }
                    // Too slow to keep up, or the cache is gone: end the watch; the client
                    // resumes from the last resourceVersion it saw.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks && accept == Accept::Json => {
                    if tx.send(encoder.bookmark(last_rev, false)).await.is_err() {
                        return;
                    }
                }
                // The cache re-listed: events may have been lost, so this watch must end.
                _ = epoch.changed() => return,
                () = &mut deadline => return,
                () = tx.closed() => return,
            }
        }
    });

    let stream = ReceiverStream::new(out).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *resp.status_mut() = StatusCode::OK;
    let ct = if accept == Accept::Table { body::TABLE_CONTENT_TYPE } else { body::JSON };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(resp)
}

/// A watch response that carries only an ERROR event with `err`'s Status.
fn error_stream(accept: Accept, err: &ApiError) -> Response<Body> {
    let ct = if accept == Accept::Table { body::TABLE_CONTENT_TYPE } else { body::JSON };
    let mut resp = body::bytes_response(StatusCode::OK, ct, line(&json!({"type": "ERROR", "object": err.to_status()})));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp
}

async fn wait_fresh(api: &Api, rev: Revision) -> Result<(), ApiError> {
    api.cache.wait_fresh(rev, Duration::from_secs(3)).await.map_err(|_| ApiError::Timeout {
        message: format!("Too large resource version: {rev}, current: {}", api.cache.revision()),
    })
}

fn cache_error(e: CacheError) -> ApiError {
    match e {
        CacheError::TooOld { requested, .. } => {
            ApiError::Gone { message: format!("too old resource version: {requested}") }
        }
        CacheError::TooNew { requested, current } => {
            ApiError::Timeout { message: format!("Too large resource version: {requested}, current: {current}") }
        }
        CacheError::NotReady => ApiError::Unavailable { message: "the watch cache is not ready".into() },
    }
}

/// What a watcher with this filter sees of one event, if anything.
fn translate(ev: &CacheEvent, filter: &Filter, list_prefix: &str) -> Option<(EventType, Arc<Value>)> {
    if !ev.key.starts_with(list_prefix) {
        return None;
    }
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_deref().is_some_and(|p| filter.matches(p));
    match ev.kind {
        EventType::Added => now.then(|| (EventType::Added, ev.object.clone())),
        EventType::Deleted => (before || now).then(|| (EventType::Deleted, ev.object.clone())),
        EventType::Modified => match (before, now) {
            (true, true) => Some((EventType::Modified, ev.object.clone())),
            (false, true) => Some((EventType::Added, ev.object.clone())),
            (true, false) => Some((EventType::Deleted, ev.object.clone())),
            (false, false) => None,
        },
    }
}

struct Encoder {
    accept: Accept,
    resource: &'static Resource,
    table_opts: printers::TableOptions,
    sent_headers: bool,
}

impl Encoder {
    /// One event line. With `shared`, a JSON watcher reuses the event's one encoding.
    fn event(&mut self, ty: &str, obj: &Value, shared: Option<&CacheEvent>) -> Bytes {
        let object = match self.accept {
            Accept::Json => {
                let encoded = match shared {
                    Some(ev) => ev.json().clone(),
                    None => crate::cache::to_json_bytes(obj),
                };
                let mut line = Vec::with_capacity(encoded.len() + 32);
                line.extend_from_slice(b"{\"type\":\"");
                line.extend_from_slice(ty.as_bytes());
                line.extend_from_slice(b"\",\"object\":");
                line.extend_from_slice(&encoded);
                line.extend_from_slice(b"}\n");
                return Bytes::from(line);
            }
            Accept::Table => {
                self.table_opts.now = SystemTime::now();
                self.table_opts.no_headers = self.sent_headers;
                self.table_opts.list_resource_version = obj["metadata"]["resourceVersion"].as_str().map(str::to_owned);
                self.sent_headers = true;
                printers::table_for(self.resource.kind, std::slice::from_ref(obj), &self.table_opts)
            }
        };
        line(&json!({"type": ty, "object": object}))
    }

    fn bookmark(&self, rev: Revision, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(&json!({
            "type": "BOOKMARK",
            "object": {"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta},
        }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}
