//! The Kubernetes REST API over the store. Not yet built: see the API server issue.

pub mod protobuf;
