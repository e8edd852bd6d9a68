//! Tests of the disk store, by concern.

mod complete;
mod format;
mod partial;
mod support;
mod purge;
mod seek;
