//! The conformance suite, run once per backend. Each case gets a fresh store:
//! a new SQLite directory, or a new single-member etcd on loopback.

mod suite;
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use rkube_store::Store;

/// A store and whatever keeps it alive; dropping it removes the directory or stops etcd.
struct Fixture {
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rkube_store::sqlite::SqliteStore::open(dir.path()).expect("open sqlite store");
    Fixture { store: Arc::new(store), _guard: Box::new(dir) }
}

async fn etcd() -> Fixture {
    let cluster = tokio::task::spawn_blocking(|| support::etcd::EtcdCluster::start(1)).await.expect("start etcd");
    let config = rkube_store::etcd::EtcdConfig { endpoints: cluster.endpoints(), ..Default::default() };
    let store = rkube_store::etcd::EtcdStore::connect(config).await.expect("connect etcd");
    Fixture { store: Arc::new(store), _guard: Box::new(cluster) }
}

macro_rules! conformance {
    ($backend:ident: $($case:ident $(($arc:tt))?),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = super::$backend().await;
                    conformance!(@call $case fixture $($arc)?);
                }
            )*
        }
    };
    (@call $case:ident $fixture:ident arc) => { crate::suite::$case($fixture.store.clone()).await };
    (@call $case:ident $fixture:ident) => { crate::suite::$case(&*$fixture.store).await };
}

macro_rules! all_cases {
    ($backend:ident) => {
        conformance!($backend:
            create_and_get,
            update_with_precondition,
            delete_with_precondition,
            list_and_count,
            list_pages_are_consistent,
            list_at_revision,
            watch_from_revision,
            watch_under_concurrent_writes(arc),
            watch_resumes,
            cas_race(arc),
            compaction,
            bad_input,
        );
    };
}

all_cases!(sqlite);
all_cases!(etcd);
