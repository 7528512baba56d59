//! The streaming server: logs, exec and attach. Being written.
