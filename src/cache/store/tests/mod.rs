//! Tests of the disk store, by concern.

mod bounds;
mod complete;
mod format;
mod memory_hit;
mod partial;
mod purge;
mod recovery;
mod seek;
mod support;
mod unkept;
