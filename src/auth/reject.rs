//! Why a request's token was refused.

use thiserror::Error;

/// A refused token. [`Reject::reason`] is a low-cardinality label for metrics; `Display`
/// is safe to log and never carries token text, claim values or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Reject {
    /// No token in any configured source.
    #[error("no token")]
    Missing,
    /// Not a compact JWS, bad base64 or JSON, or a claim of the wrong type.
    #[error("token is malformed")]
    Malformed,
    /// A claim the configuration requires is absent (metric reason `malformed`).
    #[error("token lacks the required `{0}` claim")]
    MissingClaim(&'static str),
    /// The signature does not verify with the selected key(s).
    #[error("token signature does not verify")]
    BadSignature,
    /// `alg` is `none`, unknown, or not the algorithm pinned for the key.
    #[error("token algorithm is not accepted")]
    WrongAlgorithm,
    /// `exp` is in the past beyond the leeway.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future beyond the leeway.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `kid` names no configured key.
    #[error("token names an unknown key")]
    UnknownKey,
    /// `iss` is absent, of the wrong type or not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is absent, of the wrong type or does not contain the configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// The header carries `crit`: no critical extension is supported.
    #[error("token header carries unsupported critical parameters")]
    Crit,
    /// The token is longer than `max_token_bytes`.
    #[error("token is too large")]
    TooLarge,
    /// Two token sources carry different tokens (answer 400).
    #[error("request carries conflicting tokens")]
    Conflict,
}

impl Reject {
    /// Metric label: one of a fixed, small set of values.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Malformed | Reject::MissingClaim(_) => "malformed",
            Reject::BadSignature => "bad_signature",
            Reject::WrongAlgorithm => "wrong_algorithm",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::UnknownKey => "unknown_key",
            Reject::WrongIssuer => "wrong_issuer",
            Reject::WrongAudience => "wrong_audience",
            Reject::Crit => "crit",
            Reject::TooLarge => "too_large",
            Reject::Conflict => "conflict",
        }
    }

    /// Every distinct metric label, for pre-registering counters.
    pub const REASONS: [&'static str; 12] = [
        "missing",
        "malformed",
        "bad_signature",
        "wrong_algorithm",
        "expired",
        "not_yet_valid",
        "unknown_key",
        "wrong_issuer",
        "wrong_audience",
        "crit",
        "too_large",
        "conflict",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_and_display_has_no_internals() {
        let all = [
            Reject::Missing,
            Reject::Malformed,
            Reject::MissingClaim("exp"),
            Reject::BadSignature,
            Reject::WrongAlgorithm,
            Reject::Expired,
            Reject::NotYetValid,
            Reject::UnknownKey,
            Reject::WrongIssuer,
            Reject::WrongAudience,
            Reject::Crit,
            Reject::TooLarge,
            Reject::Conflict,
        ];
        for reject in all {
            assert!(Reject::REASONS.contains(&reject.reason()), "{reject:?}");
            assert!(!reject.to_string().is_empty());
        }
        for reason in Reject::REASONS {
            assert!(all.iter().any(|r| r.reason() == reason), "{reason}");
        }
    }
}
