//! Tests of the token gate as a whole, through the `Verifier`: tokens
//! minted with the keys of `keys`, checked as requests would be.

mod cdni;
mod config;
pub(super) mod keys;
mod policy;
mod registered_claims;
mod rfc7515;
mod verify;
