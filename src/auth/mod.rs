//! Token (JWT) verification: configuration, key loading, extraction from requests, checks.
//!
//! Start-up: [`AuthSettings`] (the file's section) -> `AuthConfig` (validated, in
//! `settings::validate`) -> [`Verifier`] (every key loaded, every problem reported). Per request: [`extract::find_token`] -> [`Verifier::verify`] -> [`Claims`] or a
//! [`Reject`] whose [`Reject::reason`] labels metrics.
//!
//! jsonwebtoken checks the framing and the signature with the key's pinned algorithm; this
//! module checks the rest itself: size, `crit`, `kid` selection among configured keys only,
//! and the claims (`exp`, `nbf`, `iss`, `aud`) against the caller's clock, plus the RFC 9246
//! (CDNI URI Signing) claims: `cdniv`, `cdnicrit`, `cdniip`, `cdniuc`, `jti` replay and
//! signed token renewal (`cdniets`, `cdnistt`, `cdnistd`); see `cdni.rs`, `replay.rs` and
//! `renewal.rs`.

pub mod admin_routes;
pub mod algorithm;
mod cdni;
mod claims;
pub mod client_addr;
mod cookie;
pub mod denylist;
pub mod extract;
mod grant;
mod header;
mod jwks;
pub mod jwks_url;
mod key;
mod key_store;
mod keys;
pub mod mint;
mod outcome;
mod pem;
mod public;
pub mod redact;
mod reject;
pub mod reload;
mod renewal;
mod replay;
pub mod scope;
mod secret;
pub mod settings;
mod sources;
mod verified_cache;
mod verifier;

#[cfg(test)]
mod tests;

pub use claims::Claims;
pub use denylist::DenyKind;
pub use extract::{Found, SourceKind, find_token, is_token_param};
pub use grant::Grant;
pub use mint::{MintSpec, mint};
pub use outcome::AuthOutcome;
pub use redact::{REDACTED, redact_query};
pub use reject::Reject;
pub use renewal::Renewed;
pub use settings::{AuthSettings, KeySettings, TokenSource};
pub use verifier::{RequestFacts, Verifier};
