//! The nftables service proxy. Not yet built.
