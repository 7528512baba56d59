//! The node agent: pods as runc containers with their own network namespace and IP.
//!
//! Being built: `image` (the local image store), `runtime` (runc, through per-container
//! shims) and `net` (pod sandboxes, IPAM and the `rkube up` fabric); the pod lifecycle loop
//! that ties them together comes next.

pub mod image;
pub mod kubelet;
pub mod net;
pub mod runtime;
pub mod servicelb;
pub mod stream;
