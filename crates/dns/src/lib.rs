//! The cluster DNS server. Not yet built.
