//! Tests of the disk store, by concern.

mod support;
