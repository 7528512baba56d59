//! The Kubernetes REST API over the rkube store.
//!
//! Requests flow `server` (TLS, authentication) → `route` (path to resource) → `handlers`
//! (verbs) or `watch`, which read and write through `rkube_store::Store` and serve lists
//! and watches from the in-memory `cache`. `error` is the one place where failures become
//! Kubernetes `Status` objects.
//!
//! **Architecture invariant:** this is the only crate that talks to the store.

pub mod auth;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod error;
pub mod fieldmanager;
pub mod handlers;
pub mod meta;
pub mod nodeproxy;
pub mod openapi;
pub mod pki;
pub mod printers;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod route;
pub mod server;
pub mod serviceaccount;
pub mod services;
pub mod validation;
pub mod watch;
