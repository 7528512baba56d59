//! The etcd v3 backend. (Being written.)

/// A [`crate::Store`] on an etcd v3 cluster.
pub struct EtcdStore;
