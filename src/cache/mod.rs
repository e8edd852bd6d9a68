//! Caching: the key an object is stored under. The disk store builds on it.

pub mod key;
pub mod store;
