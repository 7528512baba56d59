//! Helpers shared by the integration tests. Each test binary includes this module with
//! `mod support;` and uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod etcd;
