//! The pod scheduler. Not yet built.
