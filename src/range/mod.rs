//! Byte ranges (RFC 9110 §14) on cached objects, replacing Pingora 0.9.1's
//! range filter (which answers `bytes=-0` with an invalid `Content-Range`
//! and underflows on a suffix range of an empty object).
//!
//! `spec` parses the header, `plan` resolves it against the object's length
//! (satisfiability, coalescing, part limit), `filter` rewrites the response
//! header and tells Pingora which body to send, `multipart` frames the body
//! of a multi-range answer for routes that write it themselves.

pub mod filter;
pub mod multipart;
pub mod plan;
pub mod spec;

pub use filter::{advertise, apply};
