//! The Kubernetes REST API over the store. Being built: see the API server issue.

pub mod auth;
pub mod pki;
pub mod printers;
pub mod protobuf;
