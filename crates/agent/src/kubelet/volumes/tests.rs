//! Unit tests of the volume logic.
