//! What a verified token grants: its claims, plus the parts of them read once at
//! verification (the path scope) so that cached tokens are checked against each request
//! without parsing again.

use crate::auth::cdni::Cdni;
use crate::auth::claims::Claims;
use crate::auth::scope::Scope;

/// A verified token. Shared between requests through the verified-token cache: it holds
/// nothing that depends on a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub claims: Claims,
    pub(crate) scope: ScopeGrant,
    /// The RFC 9246 claims (`cdniip`, `cdniuc`, renewal).
    pub(crate) cdni: Cdni,
}

/// The token's path scope, as configured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScopeGrant {
    /// No `scope_claim` is configured: tokens are not scoped.
    NotConfigured,
    /// The token has no scope claim.
    Absent,
    Patterns(Scope),
}
