//! Why a request's token was refused.

use thiserror::Error;

/// A refused token. [`Reject::reason`] is a low-cardinality label for metrics; `Display`
/// is safe to log and never carries token text, claim values or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Reject {
    /// No token in any configured source.
    #[error("no token")]
    Missing,
    /// Not a compact JWS, bad base64 or JSON, or a claim of the wrong type: a registered
    /// claim (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`) is typed whatever the
    /// configuration.
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
    /// `iss` is absent or not the configured issuer (an `iss` that is not a string is
    /// `Malformed`).
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` names no audience of the node: absent while `auth.audience` is set, without one
    /// of its values, or present while no audience is set (RFC 7519 4.1.3). An `aud` that is
    /// not a string or an array of strings is `Malformed`.
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
    /// `exp - iat` is longer than `max_lifetime_seconds`, or `exp` is too far ahead.
    #[error("token lives longer than allowed")]
    Lifetime,
    /// A valid token whose scope does not cover the requested path (answer 403).
    #[error("token does not cover this path")]
    OutOfScope,
    /// A valid token without the configured scope claim (answer 403).
    #[error("token carries no scope")]
    Unscoped,
    /// The token's `jti` or `sub` is on the denylist.
    #[error("token is revoked")]
    Revoked,
    /// `cdniip` does not match the client's address (answer 403).
    #[error("token is bound to another client address")]
    AddressMismatch,
    /// The token's `jti` was seen before and one-time use is configured.
    #[error("token was used before")]
    Replayed,
    /// `cdnicrit` names a claim the node does not handle.
    #[error("token carries unsupported critical claims")]
    UnknownCritical,
    /// `cdniuc` does not match the requested URI (answer 403).
    #[error("token is bound to another URI")]
    UriMismatch,
    /// `cdniv` is not 1 (metric reason `malformed`).
    #[error("token claim set version is not supported")]
    UnsupportedVersion,
    /// `cdniuc` holds a container type other than `hash` or `regex` (metric reason
    /// `malformed`).
    #[error("token URI container type is not supported")]
    UnsupportedUriContainer,
}

impl Reject {
    /// Metric label: one of a fixed, small set of values.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Malformed
            | Reject::MissingClaim(_)
            | Reject::UnsupportedVersion
            | Reject::UnsupportedUriContainer => "malformed",
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
            Reject::Lifetime => "lifetime",
            Reject::OutOfScope => "out_of_scope",
            Reject::Unscoped => "unscoped",
            Reject::Revoked => "revoked",
            Reject::AddressMismatch => "address_mismatch",
            Reject::Replayed => "replayed",
            Reject::UnknownCritical => "unknown_critical",
            Reject::UriMismatch => "uri_mismatch",
        }
    }

    /// True when the token itself is good but does not open this request (answer 403, not
    /// 401: another token would not help the same client ask for the same thing).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Reject::OutOfScope | Reject::Unscoped | Reject::AddressMismatch | Reject::UriMismatch
        )
    }

    /// Every distinct metric label, for pre-registering counters.
    pub const REASONS: [&'static str; 20] = [
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
        "lifetime",
        "out_of_scope",
        "unscoped",
        "revoked",
        "address_mismatch",
        "replayed",
        "unknown_critical",
        "uri_mismatch",
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
            Reject::Lifetime,
            Reject::OutOfScope,
            Reject::Unscoped,
            Reject::Revoked,
            Reject::AddressMismatch,
            Reject::Replayed,
            Reject::UnknownCritical,
            Reject::UriMismatch,
            Reject::UnsupportedVersion,
            Reject::UnsupportedUriContainer,
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
