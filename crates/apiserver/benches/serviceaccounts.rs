//! Service-account token benchmark: what authenticating a TokenRequest JWT costs against the
//! static bearer token from `tokens.csv`, side by side in one run.
//!
//! Run with `./bench serviceaccounts` (or `cargo bench -p rkube-apiserver --bench
//! serviceaccounts`); set `RKUBE_BENCH_QUICK=1` for a short run. It measures
//! - the signature check alone (`Signer::verify`), the check of a token already verified once
//!   (`Signer::verify_cached`, what the server does) and the token file lookup
//!   (`Authenticator::authenticate_token`), per call, in this process;
//! - `GET` of one ServiceAccount through the real API server over HTTPS with each token, with 1
//!   and 16 concurrent clients (each its own HTTP/2 connection with keep-alive). The JWT path
//!   also checks that the ServiceAccount still exists, in the watch cache, as upstream's
//!   validator does in its informer cache.
//!
//! Clients and server share this machine's cores.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use rkube_apiserver::auth::Authenticator;
use rkube_apiserver::serviceaccount::{Signer, now_unix};
use serde_json::json;
use support::{Cluster, Credentials, https_client};

fn quick() -> bool {
    std::env::var_os("RKUBE_BENCH_QUICK").is_some()
}

fn per_call(n: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n as u32
}

/// Requests per second of `clients` clients each doing `each` GETs of `url` with `token`.
async fn throughput(cluster: &Cluster, url: &str, token: &str, clients: usize, each: usize) -> f64 {
    let start = Instant::now();
    let runs = (0..clients).map(|_| {
        let client = https_client(&cluster.server.pki, Credentials::None);
        let token = token.to_owned();
        let url = url.to_owned();
        async move {
            for _ in 0..each {
                let resp = client.get(&url).bearer_auth(&token).send().await.expect("GET");
                assert_eq!(resp.status().as_u16(), 200);
                resp.bytes().await.expect("body");
            }
        }
    });
    join_all(runs).await;
    (clients * each) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let cluster = Cluster::start().await;
    let admin = cluster.client();
    let ns = "default";
    let resp = admin
        .post(cluster.url(&format!("/api/v1/namespaces/{ns}/serviceaccounts")))
        .json(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench"}}))
        .send()
        .await
        .expect("create ServiceAccount");
    assert_eq!(resp.status().as_u16(), 201);
    let tr: serde_json::Value = admin
        .post(cluster.url(&format!("/api/v1/namespaces/{ns}/serviceaccounts/bench/token")))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}))
        .send()
        .await
        .expect("TokenRequest")
        .json()
        .await
        .expect("TokenRequest JSON");
    let jwt = tr["status"]["token"].as_str().expect("token").to_owned();
    let static_token = cluster.server.pki.admin_token.clone();

    let n = if quick() { 2_000 } else { 20_000 };
    let signer = Signer::load_or_create(&cluster.dir.path().join("tls")).expect("signing key");
    let auth = Authenticator::new(&cluster.dir.path().join("tls")).expect("authenticator");
    let now = now_unix();
    let verify = per_call(n, || {
        signer.verify(&jwt, now).expect("verify");
    });
    let cached = per_call(n, || {
        signer.verify_cached(&jwt, now).expect("verify");
    });
    let lookup = per_call(n, || {
        auth.authenticate_token(&static_token).expect("static token");
    });
    println!("in process, {n} calls each:");
    println!("  static token lookup      {:>8.2} µs/call  (baseline)", lookup.as_secs_f64() * 1e6);
    println!(
        "  JWT signature check      {:>8.2} µs/call  ({:.1}x the baseline)",
        verify.as_secs_f64() * 1e6,
        verify.as_secs_f64() / lookup.as_secs_f64()
    );

    let url = cluster.url(&format!("/api/v1/namespaces/{ns}/serviceaccounts/bench"));
    let each = if quick() { 200 } else { 2_000 };
    println!(
        "  JWT, remembered          {:>8.2} µs/call  ({:.1}x the baseline)",
        cached.as_secs_f64() * 1e6,
        cached.as_secs_f64() / lookup.as_secs_f64()
    );
    println!("GET one ServiceAccount over HTTPS:");
    for clients in [1, 16] {
        let each = if clients == 1 { each } else { each / 8 };
        // One warm-up pass per token so that connections and caches are set up.
        throughput(&cluster, &url, &static_token, clients, 5).await;
        throughput(&cluster, &url, &jwt, clients, 5).await;
        let base = throughput(&cluster, &url, &static_token, clients, each).await;
        let sa = throughput(&cluster, &url, &jwt, clients, each).await;
        println!(
            "  {clients:>2} clients: static token {base:>8.0} req/s (baseline), service-account JWT {sa:>8.0} req/s ({:.2}x)",
            sa / base
        );
    }
}
