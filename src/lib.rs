//! cdn-node: a caching CDN edge node for token-protected video, built on
//! Pingora. See the README for how a request moves through the node.

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod fast_exit;
pub mod limits;
pub mod listeners;
pub mod log_file;
pub mod manifest;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod range;
pub mod refusal;
pub mod reload_trigger;
pub mod request;
pub mod run;
pub mod slice;
pub mod tls;
