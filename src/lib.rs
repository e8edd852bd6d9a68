//! cdn-node: a caching CDN edge node for token-protected video, built on
//! Pingora. `docs/architecture.md` draws how a request moves through the
//! node.

// Two places need `unsafe`, allowed there alone: closing and duplicating
// descriptors of Pingora's socket table (`listeners/workers.rs`), and a
// read into a buffer's spare capacity (`cache/store/cached_read.rs`).
#![deny(unsafe_code)]

pub mod access_log;
mod admin;
mod answer;
pub mod auth;
pub mod cache;
pub mod cli;
mod cluster;
mod config;
mod cors;
mod fast_exit;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
mod lane;
mod limits;
mod listeners;
pub mod manifest;
pub mod metrics;
mod origin;
mod process_setup;
mod proxy;
mod range;
mod refusal;
mod reload_trigger;
mod request;
mod run;
mod slice;
mod tls;
