//! The node agent: pods as runc containers. Not yet built.

pub mod net;
