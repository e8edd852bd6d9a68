//! Caching: the key an object is stored under, what is stored for how long,
//! the disk store, its eviction manager, and how a request's cache outcome is
//! named.

pub mod engine;
pub mod eviction;
pub mod key;
pub mod lock;
pub mod policy;
pub mod purge;
pub mod settings;
pub mod status;
pub mod store;
