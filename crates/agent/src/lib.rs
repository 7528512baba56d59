//! The node agent: pods as runc containers with their own network namespace and IP.
//!
//! Being built: `image` (the local image store), `runtime` (runc, through per-container
//! shims), and the pod networking; the pod lifecycle loop that ties them together comes next.

pub mod image;
pub mod runtime;
