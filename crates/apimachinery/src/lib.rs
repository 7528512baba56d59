//! Pure API logic shared by the API server and clients of it inside rkube:
//! label and field selectors, the patch formats, and service-link environment variables.
//!
//! **Architecture invariant:** this crate does no I/O and knows nothing about storage or HTTP.
//! Everything here is a function of its inputs, so it is tested with plain unit tests.

pub mod patch;
pub mod selector;
pub mod service_env;
