//! The kubelet: the loop that makes the pods bound to this node real, and reports on them.

pub mod env;
pub mod source;
pub mod volumes;
