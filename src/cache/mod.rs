//! Caching: the key an object is stored under and the disk cache's eviction
//! manager. The disk store builds on them.

pub mod eviction;
pub mod key;
pub mod store;
