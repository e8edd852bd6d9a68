//! Tests of the disk store, by concern.

mod complete;
mod format;
mod support;
