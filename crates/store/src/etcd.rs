//! The etcd v3 backend.
//!
//! Every [`Store`] operation maps onto native etcd v3 requests, so that etcd's own revision
//! counter is the store's revision and nothing is kept on this side:
//!
//! - `create` is a transaction "if `create_revision(key) == 0` then put", because etcd reports a
//!   missing key with a create revision of 0; a failed compare means the key exists.
//! - `update` is "if `mod_revision(key) == expected` and `version(key) > 0` then put". The version
//!   compare is needed because etcd compares a missing key as if all its revisions were 0, so
//!   `expected == 0` would otherwise create the key. When the compare fails, a separate read tells
//!   [`Error::NotFound`] from [`Error::Conflict`]; a transaction could read in its failure branch,
//!   but `etcd-client` panics on a malformed transaction response, and a plain read does not.
//! - `delete` without a precondition is a plain delete that returns the previous value. With a
//!   precondition, the value is read first and the delete is a transaction on the same
//!   `mod_revision`: equal mod revisions mean the same write, so the read value is exactly the
//!   value that the transaction deleted.
//! - `list` is one range read at one revision, with etcd's `count` giving `remaining`; later pages
//!   are read at the first page's revision, which etcd keeps until it is compacted.
//! - `watch` is an etcd watch with `prev_kv`. A delete is recognised by a create revision of 0 on
//!   the event's key-value, which is how etcd itself decides an event is a delete; the event type
//!   field is not read because `etcd-client` panics on an unknown one.
//! - After `compact(C)` etcd keeps revision `C` itself, so reads at `C` work and
//!   [`Error::Compacted::compacted`] is `C`. A watch needs `after >= C`: etcd would also start one
//!   from `C` itself (`after == C - 1`), but compaction drops a delete at exactly `C` from the
//!   history, and such a watch could silently miss it.
//!
//! # Failures
//!
//! `etcd-client` spreads requests over all endpoints. A dead member stays in that set, and a
//! request sent its way fails at once with a refused connection. Failures are therefore sorted by
//! whether the request can have been applied. A request that never reached a server (the
//! connection could not be opened) or that etcd refused before proposing it (no leader, too many
//! requests) is retried for every operation, writes included. Any other transport failure leaves a
//! write's fate unknown: reads and compactions, which can be repeated safely, are retried, and
//! writes return [`Error::Unavailable`] so that the caller decides. Retries are bounded by a time
//! budget that covers an etcd leader election.
//!
//! Writes get a shorter time limit than reads. When the leader dies, a follower that has not
//! noticed yet forwards writes to it and they are silently dropped, so they can only time out; a
//! short limit frees the writer for the new leader soon after the election. Killing the leader of
//! three members under load (see `tests/etcd_member_loss.rs`), every read succeeds, the writes in
//! flight fail as unavailable, and new writes succeed from about the moment the survivors have
//! elected a new leader, one to three seconds with etcd's default timeouts.
//!
//! A watch ends with [`Error::Unavailable`] when the member serving it goes away, and the caller
//! resumes from the last revision it saw; etcd serves the rest from any member.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity, KvClient, TlsOptions,
    Txn, TxnOp, WatchClient, WatchOptions,
};
use tokio::time::timeout;

use crate::{
    ContinueToken, Error, Event, EventKind, KeyValue, ListOptions, ListPage, MAX_VALUE_BYTES, Result, Revision, Store,
    WatchStream, prefix_end, validate_key, validate_prefix,
};

/// How long a read may take before it counts as failed. Reads can be whole lists, so this is
/// generous; it is also the channel's limit for every request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may take before it counts as failed (with its fate unknown). Shorter than a
/// read's limit because of how etcd loses its leader: a follower forwards a write to the leader it
/// knows, and if that leader has just died the write is silently dropped, so the request can only
/// time out. Writes are small and normally commit in milliseconds, so a short limit lets writers
/// move on to the new leader soon after an election.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting to one member may take. Shorter than the request timeout so that a member
/// whose host vanished is given up before the request that needed it times out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP/2 pings find a connection whose peer vanished without closing it. etcd sends GOAWAY to a
/// client that pings more often than `--grpc-keepalive-min-time` (5 s by default), so stay above it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// No new attempt of a failed request starts later than this after the first. An etcd election
/// takes one to three seconds with the default timeouts, and a read that went to a member which
/// lost its leader may need its whole timeout to fail, so this leaves room for one more attempt
/// after either.
const RETRY_BUDGET: Duration = Duration::from_secs(6);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// gRPC messages as large as a whole list: the default limit of 4 MiB would make listing a large
/// prefix fail, which Kubernetes avoids the same way.
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// How to reach an etcd cluster.
#[derive(Clone, Debug, Default)]
pub struct EtcdConfig {
    /// Client URLs of the members, `http://host:port` or `https://host:port`.
    /// Give all of them: the client spreads requests over them and avoids a member that is down.
    pub endpoints: Vec<String>,
    /// The CA that signed the members' certificates (PEM). Needed for `https` endpoints: the
    /// system's trusted roots are not used.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for members that require client authentication.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Turns a datastore URL, `etcd://host:port[,host:port...]` or `etcds://...` for TLS, into
/// endpoint URLs for [`EtcdConfig::endpoints`].
pub fn parse_datastore_url(url: &str) -> Result<Vec<String>> {
    let bad = |reason: &str| Error::Backend(format!("invalid datastore URL {url:?}: {reason}"));
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("etcd://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("etcds://") {
        ("https", rest)
    } else {
        return Err(bad("expected etcd://host:port or etcds://host:port"));
    };
    // A trailing slash is what people type after a host; anything longer is a path etcd has no use for.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut endpoints = Vec::new();
    for host in rest.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains('/') || host.contains('@') || host.contains('?') {
            return Err(bad("only host:port is allowed, without user, path or query"));
        }
        endpoints.push(format!("{scheme}://{host}"));
    }
    Ok(endpoints)
}

/// A [`crate::Store`] on an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster and checks that it answers, so that a wrong address or a cluster
    /// without quorum is reported at startup rather than on the first request.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        if config.endpoints.is_empty() {
            return Err(Error::Backend("no etcd endpoints given".to_owned()));
        }
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // etcd counts pings on a connection without streams as abuse and closes it.
            .with_keep_alive_while_idle(false)
            // A member cut off from the leader answers "no leader" instead of serving a watch
            // that silently receives nothing; the client then goes to another member.
            .with_require_leader(true);
        let tls_wanted = config.ca_file.is_some() || config.cert_file.is_some() || config.key_file.is_some();
        let https = config.endpoints.iter().any(|e| e.starts_with("https://"));
        if tls_wanted && !https {
            return Err(Error::Backend("TLS files were given but no endpoint is https:// (use etcds://)".to_owned()));
        }
        if https {
            options = options.with_tls(tls_options(&config).await?);
        }
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| Error::Backend(format!("connecting to etcd: {e}")))?;
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
        };
        store.current_revision().await?;
        Ok(store)
    }

    /// Runs a read, retrying every transport failure within the retry budget.
    async fn read<T, F, Fut>(&self, op: F) -> std::result::Result<T, Failure>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        retry(&self.kv, Retry::Reads, op).await
    }

    /// Runs a write, retrying only the failures that show it was not applied.
    async fn write<T, F, Fut>(&self, op: F) -> std::result::Result<T, Failure>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        retry(&self.kv, Retry::Writes, op).await
    }

    async fn get_kv(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut resp = self.read(|mut kv| async move { kv.get(key, None).await }).await.map_err(Failure::into_error)?;
        let kvs = resp.take_kvs();
        match kvs.into_iter().next() {
            Some(kv) => Ok(Some(convert_kv(kv)?)),
            None => Ok(None),
        }
    }

    /// The error for a failed precondition on `key`: whatever is stored now decides which.
    async fn precondition_failed(&self, key: &str, expected: Revision) -> Error {
        match self.get_kv(key).await {
            Ok(None) => Error::NotFound { key: key.to_owned() },
            Ok(Some(current)) => Error::Conflict { key: key.to_owned(), expected, current: Some(Box::new(current)) },
            Err(e) => e,
        }
    }

    /// The revision etcd has compacted up to. etcd names it only in a watch response, so this
    /// starts a watch at revision 1 and reads the cancellation. `known_lost` is a revision known
    /// to be compacted; the answer is above it even if etcd does not say.
    async fn compacted_revision(&self, key: &str, known_lost: Revision) -> Revision {
        let fallback = known_lost + 1;
        let mut client = self.watch.clone();
        let options = WatchOptions::new().with_start_revision(1);
        let Ok(Ok(mut stream)) = timeout(REQUEST_TIMEOUT, client.watch(key, Some(options))).await else {
            return fallback;
        };
        // etcd reports a compacted start on its next sync of unsynced watchers, every 100 ms.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, stream.message()).await {
                Ok(Ok(Some(resp))) if resp.compact_revision() > 0 => {
                    return resp.compact_revision().max(fallback);
                }
                Ok(Ok(Some(resp))) if !resp.canceled() => continue,
                _ => return fallback,
            }
        }
    }

    /// Maps a failed read at `requested` to the store's error, looking up what etcd does not say.
    async fn revision_error(&self, failure: Failure, key: &str, requested: Revision) -> Error {
        match failure {
            Failure::Compacted => {
                Error::Compacted { requested, compacted: self.compacted_revision(key, requested).await }
            }
            Failure::FutureRevision => match self.current_revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(e) => e,
            },
            other => other.into_error(),
        }
    }
}

async fn tls_options(config: &EtcdConfig) -> Result<TlsOptions> {
    async fn read(what: &str, path: &PathBuf) -> Result<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| Error::Backend(format!("reading the etcd {what} {}: {e}", path.display())))
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &config.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read("CA file", ca).await?));
    }
    match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let cert = read("client certificate", cert).await?;
            let key = read("client key", key).await?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Backend(
                "an etcd client certificate needs both a certificate and a key file".to_owned(),
            ));
        }
    }
    Ok(tls)
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        validate_key(key)?;
        check_value(&value)?;
        let txn = Txn::new().when([Compare::create_revision(key, CompareOp::Equal, 0)]).and_then([TxnOp::put(
            key,
            value.to_vec(),
            None,
        )]);
        let resp = self
            .write(|mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(Failure::into_error)?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists { key: key.to_owned() });
        }
        header_revision(resp.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        self.get_kv(key).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let end = prefix_end(prefix);
        let (start, requested) = match &options.continue_token {
            Some(token) => {
                // Like the Kubernetes API server: a token from another list must not leak keys
                // outside the prefix it is now used with.
                if !token.start.starts_with(prefix) {
                    return Err(Error::InvalidContinue { reason: "the token belongs to another prefix".to_owned() });
                }
                (token.start.clone(), token.revision)
            }
            None => (prefix.to_owned(), options.revision.filter(|r| *r > 0).unwrap_or(0)),
        };
        let limit = options.limit.max(0);
        let get_options = GetOptions::new().with_range(end.as_bytes()).with_limit(limit).with_revision(requested);
        let result = self
            .read(|mut kv| {
                let get_options = get_options.clone();
                let start = start.as_bytes();
                async move { kv.get(start, Some(get_options)).await }
            })
            .await;
        let mut resp = match result {
            Ok(resp) => resp,
            Err(failure) => return Err(self.revision_error(failure, prefix, requested).await),
        };
        let revision = if requested > 0 { requested } else { header_revision(resp.header())? };
        let more = resp.more();
        let count = resp.count();
        let items = resp.take_kvs().into_iter().map(convert_kv).collect::<Result<Vec<_>>>()?;
        let mut page = ListPage { items, revision, continue_token: None, remaining: 0 };
        if more && let Some(last) = page.items.last() {
            page.continue_token = Some(ContinueToken { revision, start: format!("{}\0", last.key) });
            page.remaining = (count - page.items.len() as i64).max(0);
        }
        Ok(page)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        validate_key(key)?;
        check_value(&value)?;
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected),
                Compare::version(key, CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self
            .write(|mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(Failure::into_error)?;
        if !resp.succeeded() {
            return Err(self.precondition_failed(key, expected).await);
        }
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        validate_key(key)?;
        let Some(expected) = expected else {
            let mut resp = self
                .write(|mut kv| async move { kv.delete(key, Some(DeleteOptions::new().with_prev_key())).await })
                .await
                .map_err(Failure::into_error)?;
            let revision = header_revision(resp.header())?;
            return match resp.take_prev_kvs().into_iter().next() {
                Some(prev) => Ok((convert_kv(prev)?, revision)),
                None => Err(Error::NotFound { key: key.to_owned() }),
            };
        };
        let current = match self.get_kv(key).await? {
            None => {
                return Err(Error::NotFound { key: key.to_owned() });
            }
            Some(kv) if kv.mod_revision != expected => {
                return Err(Error::Conflict { key: key.to_owned(), expected, current: Some(Box::new(kv)) });
            }
            Some(kv) => kv,
        };
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected),
                Compare::version(key, CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::delete(key, None)]);
        let resp = self
            .write(|mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(Failure::into_error)?;
        if !resp.succeeded() {
            return Err(self.precondition_failed(key, expected).await);
        }
        Ok((current, header_revision(resp.header())?))
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        validate_prefix(prefix)?;
        let options = GetOptions::new().with_range(prefix_end(prefix)).with_count_only();
        let resp = self
            .read(|mut kv| {
                let options = options.clone();
                async move { kv.get(prefix, Some(options)).await }
            })
            .await
            .map_err(Failure::into_error)?;
        Ok(resp.count())
    }

    async fn current_revision(&self) -> Result<Revision> {
        // A linearizable read of one key that never exists (no store key ends with '/'):
        // the header carries the newest committed revision.
        let resp = self
            .read(|mut kv| async move { kv.get("/", Some(GetOptions::new().with_count_only())).await })
            .await
            .map_err(Failure::into_error)?;
        header_revision(resp.header())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        // `after = 0` asks for all retained history, which in etcd starts at revision 1.
        let after = after.max(0);
        // The watch needs the history after `after`, and so the state at `after` itself, to be
        // readable. etcd would start a watch one revision earlier, at the compaction revision
        // itself, but compaction drops a delete at exactly that revision from the history, so
        // such a watch could silently miss it.
        //
        // etcd reports a compacted start only after the watch is set up, on its next sync of
        // lagging watchers; a read answers now, so the caller gets the error from `watch` itself
        // unless a compaction races with this call. A start in the future is fine: etcd waits.
        let check = GetOptions::new().with_count_only().with_revision(after.max(1));
        let result = self
            .read(|mut kv| {
                let check = check.clone();
                async move { kv.get(prefix, Some(check)).await }
            })
            .await;
        match result {
            Ok(_) | Err(Failure::FutureRevision) => {}
            Err(Failure::Compacted) => {
                return Err(Error::Compacted {
                    requested: after,
                    compacted: self.compacted_revision(prefix, after).await,
                });
            }
            Err(other) => return Err(other.into_error()),
        }
        let options = WatchOptions::new().with_range(prefix_end(prefix)).with_start_revision(after + 1).with_prev_key();
        let client = self.watch.clone();
        let stream = retry(&client, Retry::Reads, |mut client| {
            let options = options.clone();
            async move {
                let mut stream = client.watch(prefix, Some(options)).await?;
                // Wait for etcd to confirm the watch, so that a refused watch is reported here.
                match stream.message().await? {
                    Some(resp) if resp.created() && !resp.canceled() => Ok(stream),
                    Some(resp) => {
                        Err(etcd_client::Error::WatchError(format!("watch not created: {}", resp.cancel_reason())))
                    }
                    None => Err(etcd_client::Error::WatchError("watch stream closed before it was created".to_owned())),
                }
            }
        })
        .await
        .map_err(Failure::into_error)?;
        let state = WatchState { stream, _client: client, after, last: after, pending: VecDeque::new(), done: false };
        Ok(Box::pin(futures::stream::unfold(state, next_event)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= 0 {
            return Ok(());
        }
        let result = self
            .read(|mut kv| async move {
                kv.compact(revision, Some(etcd_client::CompactionOptions::new().with_physical())).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // Compacting again up to a revision that is already gone changes nothing.
            Err(Failure::Compacted) => Ok(()),
            Err(failure) => Err(self.revision_error(failure, "/", revision).await),
        }
    }
}

/// A watch in progress.
struct WatchState {
    stream: etcd_client::WatchStream,
    /// The client the watch was started with. The stream only needs the connection, but
    /// holding the client keeps the channel's background worker alive for as long as the watch.
    _client: WatchClient,
    /// Events at or below this revision were asked not to be delivered.
    after: Revision,
    /// The revision of the last event delivered, where a resumed watch would start.
    last: Revision,
    /// Events received from etcd and not yet delivered: one etcd response can carry many.
    pending: VecDeque<Event>,
    /// Set once the watch has failed; the stream ends after the pending error.
    done: bool,
}

async fn next_event(mut state: WatchState) -> Option<(Result<Event>, WatchState)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            state.last = event.revision;
            return Some((Ok(event), state));
        }
        if state.done {
            return None;
        }
        let resp = match state.stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                state.done = true;
                let error = Error::Unavailable("etcd closed the watch stream".to_owned());
                return Some((Err(error), state));
            }
            Err(e) => {
                state.done = true;
                return Some((Err(Failure::classify(&e).into_error()), state));
            }
        };
        if resp.compact_revision() > 0 {
            state.done = true;
            let error = Error::Compacted { requested: state.last, compacted: resp.compact_revision() };
            return Some((Err(error), state));
        }
        if resp.canceled() {
            state.done = true;
            let reason = resp.cancel_reason();
            // A member that lost its leader cancels watches so that the client moves elsewhere.
            let error = if reason.contains("no leader") {
                Error::Unavailable(format!("etcd cancelled the watch: {reason}"))
            } else {
                Error::Backend(format!("etcd cancelled the watch: {reason}"))
            };
            return Some((Err(error), state));
        }
        for event in resp.events() {
            match convert_event(event) {
                Ok(event) if event.revision > state.after => state.pending.push_back(event),
                Ok(_) => {}
                Err(e) => {
                    // Deliver what came before the bad event, then the error: the caller resumes
                    // from the last good revision.
                    state.done = true;
                    if state.pending.is_empty() {
                        return Some((Err(e), state));
                    }
                    break;
                }
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event.kv().ok_or_else(|| Error::Backend("etcd sent an event without a key".into()))?;
    let revision = kv.mod_revision();
    let prev = event.prev_kv().map(convert_kv_ref).transpose()?;
    // etcd itself marks an event as a delete when the key's create revision is 0.
    if kv.create_revision() == 0 {
        // The store's delete event carries the deleted value under the delete's revision.
        let deleted = KeyValue {
            key: key_string(kv.key())?,
            value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
            create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
            mod_revision: revision,
        };
        return Ok(Event { kind: EventKind::Delete, revision, kv: deleted, prev });
    }
    let kind = if kv.create_revision() == kv.mod_revision() { EventKind::Create } else { EventKind::Update };
    let prev = if kind == EventKind::Create { None } else { prev };
    Ok(Event { kind, revision, kv: convert_kv_ref(kv)?, prev })
}

fn convert_kv(kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).map_err(|_| Error::Backend("etcd returned a key that is not UTF-8".to_owned()))?;
    Ok(KeyValue { key, value: Bytes::from(value), create_revision, mod_revision })
}

fn convert_kv_ref(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(kv.key())?,
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn key_string(key: &[u8]) -> Result<String> {
    std::str::from_utf8(key)
        .map(str::to_owned)
        .map_err(|_| Error::Backend("etcd returned a key that is not UTF-8".to_owned()))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(etcd_client::ResponseHeader::revision)
        .ok_or_else(|| Error::Backend("etcd sent a response without a header".to_owned()))
}

fn check_value(value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { size: value.len(), limit: MAX_VALUE_BYTES });
    }
    Ok(())
}

/// What a failed etcd request means for retrying it.
#[derive(Debug)]
enum Failure {
    /// The request was not applied: it never reached a server, or etcd refused it before
    /// proposing it. Any request may be sent again.
    NotSent(String),
    /// The connection failed with the request possibly applied. Only reads may be sent again.
    Ambiguous(String),
    /// The requested revision has been compacted.
    Compacted,
    /// The requested revision is newer than the newest.
    FutureRevision,
    /// Anything else; retrying will not help.
    Other(String),
}

// gRPC status codes, by number so that this crate does not depend on tonic's types directly.
const CODE_CANCELLED: i32 = 1;
const CODE_UNKNOWN: i32 = 2;
const CODE_DEADLINE_EXCEEDED: i32 = 4;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_UNAVAILABLE: i32 = 14;

impl Failure {
    fn classify(error: &etcd_client::Error) -> Failure {
        use etcd_client::Error as E;
        match error {
            E::GRpcStatus(status) => {
                let message = status.message();
                let described = format!("{message} ({:?})", status.code());
                if message.contains("required revision has been compacted") {
                    return Failure::Compacted;
                }
                if message.contains("required revision is a future revision") {
                    return Failure::FutureRevision;
                }
                if connect_failed(error) {
                    return Failure::NotSent(described);
                }
                match status.code() as i32 {
                    // etcd checks for a leader before proposing (we send "require leader"),
                    // and sheds load before proposing too.
                    CODE_UNAVAILABLE | CODE_RESOURCE_EXHAUSTED
                        if message.contains("no leader") || message.contains("too many requests") =>
                    {
                        Failure::NotSent(described)
                    }
                    CODE_UNAVAILABLE | CODE_CANCELLED | CODE_DEADLINE_EXCEEDED => Failure::Ambiguous(described),
                    // Transport failures that tonic could not attribute come as Unknown.
                    CODE_UNKNOWN if std::error::Error::source(status).is_some() => Failure::Ambiguous(described),
                    _ => Failure::Other(described),
                }
            }
            E::TransportError(_) | E::IoError(_) | E::WatchError(_) => {
                if connect_failed(error) {
                    Failure::NotSent(error.to_string())
                } else {
                    Failure::Ambiguous(error.to_string())
                }
            }
            _ => Failure::Other(error.to_string()),
        }
    }

    fn into_error(self) -> Error {
        match self {
            Failure::NotSent(m) | Failure::Ambiguous(m) => Error::Unavailable(m),
            Failure::Compacted => Error::Backend("etcd reported a compacted revision".to_owned()),
            Failure::FutureRevision => Error::Backend("etcd reported a future revision".to_owned()),
            Failure::Other(m) => Error::Backend(m),
        }
    }
}

/// True if the error comes from failing to open a connection, which means that the request was
/// never sent. `etcd_client::Error` does not expose its cause, so this starts from the inner error.
fn connect_failed(error: &etcd_client::Error) -> bool {
    let inner: &(dyn std::error::Error + 'static) = match error {
        etcd_client::Error::GRpcStatus(status) => status,
        etcd_client::Error::TransportError(e) => e,
        etcd_client::Error::IoError(e) => e,
        _ => return false,
    };
    let mut current = Some(inner);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        // hyper-util's connector names every failure to open a TCP connection this way,
        // refused or timed out alike; tonic copies it into the status message.
        if e.to_string().starts_with("tcp connect error") {
            return true;
        }
        current = e.source();
    }
    false
}

/// How a request may be repeated.
#[derive(Clone, Copy, Debug)]
enum Retry {
    /// The request can be repeated after any transport failure: a read, or a compaction.
    Reads,
    /// The request is repeated only when it was certainly not applied: a write.
    Writes,
}

impl Retry {
    fn timeout(self) -> Duration {
        match self {
            Retry::Reads => REQUEST_TIMEOUT,
            Retry::Writes => WRITE_TIMEOUT,
        }
    }
}

/// Runs `op` until it succeeds, it fails in a way that retrying cannot fix, or the retry budget is
/// spent.
async fn retry<C, T, F, Fut>(client: &C, kind: Retry, mut op: F) -> std::result::Result<T, Failure>
where
    C: Clone,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let limit = kind.timeout();
        let failure = match timeout(limit, op(client.clone())).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => Failure::classify(&e),
            Err(_) => Failure::Ambiguous(format!("no answer from etcd within {limit:?}")),
        };
        let retryable = match failure {
            Failure::NotSent(_) => true,
            Failure::Ambiguous(_) => matches!(kind, Retry::Reads),
            _ => false,
        };
        if !retryable || started.elapsed() + backoff >= RETRY_BUDGET {
            return Err(failure);
        }
        tracing::debug!(?failure, "etcd request failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_urls() {
        assert_eq!(
            parse_datastore_url("etcd://a:2379,b:2379").ok(),
            Some(vec!["http://a:2379".to_owned(), "http://b:2379".to_owned()])
        );
        assert_eq!(parse_datastore_url("etcds://10.0.0.1:2379/").ok(), Some(vec!["https://10.0.0.1:2379".to_owned()]));
        for bad in ["", "http://a:2379", "etcd://", "etcd://a:2379,", "etcd://u@a:2379", "etcd://a/x"] {
            assert!(parse_datastore_url(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn failures_that_were_not_sent_are_recognised() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let failure = Failure::classify(&etcd_client::Error::IoError(refused));
        assert!(matches!(failure, Failure::NotSent(_)), "{failure:?}");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let failure = Failure::classify(&etcd_client::Error::IoError(reset));
        assert!(matches!(failure, Failure::Ambiguous(_)), "{failure:?}");
    }
}
