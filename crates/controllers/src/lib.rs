//! Workload controllers (Deployment, ReplicaSet, garbage collection, namespaces, node lifecycle). Not yet built.
