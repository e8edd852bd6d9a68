//! The verifier: built from the validated `auth:` configuration ([`AuthConfig`]), it verifies
//! tokens, decides whether one opens a request, signs renewed tokens, and keeps the keys,
//! the denylist and its caches up to date.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use crate::auth::cdni::{Cdni, CdniPolicy, Transport, cookie_path, request_uri};
use crate::auth::claims::{AudienceRule, ClaimPolicy, Claims};
use crate::auth::client_addr::ClientAddress;
use crate::auth::denylist::{DenyKind, Denylist, Reloaded};
use crate::auth::grant::{Grant, ScopeGrant};
use crate::auth::header::read_header;
use crate::auth::key::VerifyKey;
use crate::auth::key_store::KeyStore;
use crate::auth::public::PublicPrefixes;
use crate::auth::reject::Reject;
use crate::auth::renewal::{RenewalKey, Renewed, set_cookie};
use crate::auth::replay::ReplayCache;
use crate::auth::scope::Scope;
use crate::auth::settings::{AuthConfig, AuthSettings, TokenSource};
use crate::auth::verified_cache::VerifiedCache;
use crate::config::Problem;

/// What the verifier needs to know about the request a token comes with.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The canonical path (what the cache keys on and S3 is asked for).
    pub path: &'a str,
    /// The client's address, as [`crate::auth::client_addr`] found it.
    pub client: Option<IpAddr>,
    /// The `Host` header (or the target's authority), for `cdniuc`.
    pub host: Option<&'a str>,
    /// The canonical query (the parameters passed to S3, never a token), for `cdniuc`.
    pub query: &'a str,
}

/// Verifies tokens against the configured keys and claim policy.
#[derive(Debug)]
pub struct Verifier {
    keys: KeyStore,
    policy: ClaimPolicy,
    max_token_bytes: usize,
    public: PublicPrefixes,
    token_sources: Vec<TokenSource>,
    scope_claim: Option<String>,
    allow_unscoped: bool,
    denylist: Denylist,
    cache: VerifiedCache<Grant>,
    /// Moves whenever keys or the denylist change; cached results of another epoch are void.
    epoch: AtomicU64,
    client_address: ClientAddress,
    /// `auth.replay_protection`: every `jti` let through, until its token expires.
    replay: Option<ReplayCache>,
    renewal_key: Option<RenewalKey>,
    renewal_header: HeaderName,
    /// The cookie renewed tokens are set in (`cdnistt` 1): the first `cookie:` source.
    renewal_cookie: Option<String>,
    uri_scheme: String,
    /// Set once the log has said why a token with `aud` was refused (no audience set).
    warned_unset_audience: AtomicBool,
}

impl Verifier {
    /// Loads every key and checks every setting; relative paths resolve against `base_dir`
    /// (the configuration file's folder). Returns every problem found, not only the first.
    /// Both steps in one: `AuthConfig::from_section`, then `Verifier::new`.
    pub fn from_settings(
        settings: &AuthSettings,
        base_dir: &Path,
    ) -> Result<Verifier, Vec<Problem>> {
        AuthConfig::from_section(settings, base_dir, &|name| std::env::var_os(name))
            .map(Verifier::new)
    }

    /// The verifier of a validated configuration.
    pub(crate) fn new(config: AuthConfig) -> Verifier {
        Verifier {
            client_address: config.client_address,
            keys: KeyStore::new(&config.key_entries, config.keys, config.base_dir),
            policy: config.policy,
            max_token_bytes: config.max_token_bytes,
            public: config.public,
            token_sources: config.token_sources,
            scope_claim: config.scope_claim,
            allow_unscoped: config.allow_unscoped,
            denylist: config.denylist,
            cache: VerifiedCache::new(config.verified_cache_entries),
            epoch: AtomicU64::new(0),
            replay: config.replay_cache_entries.map(ReplayCache::new),
            renewal_key: config.renewal_key,
            renewal_header: config.renewal_header,
            renewal_cookie: config.renewal_cookie,
            uri_scheme: config.uri_scheme,
            warned_unset_audience: AtomicBool::new(false),
        }
    }

    /// Where requests carry their token, in order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.token_sources
    }

    /// True when `canonical_path` is under a public prefix and needs no token.
    pub fn is_public(&self, canonical_path: &str) -> bool {
        self.public.contains(canonical_path)
    }

    /// Verifies `token` at time `now_unix` (seconds): signature and claims, nothing that
    /// depends on a request, no cache. The size is checked before any parsing; the key is
    /// chosen by `kid` among configured keys only, or by the header's algorithm when there is
    /// no `kid`; the algorithm must be the key's pinned one.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, Reject> {
        self.verify_grant(token, now_unix).map(|grant| grant.claims)
    }

    /// Decides whether `token` opens the request: the verified-token cache, or a full
    /// verification, then every check that depends on the request or the clock (`exp`,
    /// `nbf`, denylist, path scope, `cdniip`, `cdniuc`), and last the replay cache, so that
    /// only a token that opens the request is used up.
    pub fn authorize(
        &self,
        token: &str,
        facts: &RequestFacts<'_>,
        now_unix: u64,
    ) -> Result<Arc<Grant>, Reject> {
        if token.len() > self.max_token_bytes {
            return Err(Reject::TooLarge);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let grant = match self.cache.get(token, epoch, now_unix) {
            Some(grant) => grant,
            None => {
                let grant = Arc::new(self.verify_grant(token, now_unix)?);
                if let Some(exp) = grant.claims.exp {
                    let until = exp.saturating_add(self.policy.leeway);
                    self.cache
                        .insert(token, grant.clone(), until, epoch, now_unix);
                }
                grant
            }
        };
        self.check_request(&grant, facts, now_unix)?;
        if let Some(replay) = &self.replay {
            let Some(jti) = grant.claims.jti.as_deref() else {
                return Err(Reject::MissingClaim("jti"));
            };
            let until = grant
                .claims
                .exp
                .map_or(u64::MAX, |exp| exp.saturating_add(self.policy.leeway));
            if !replay.first_use(jti, until, now_unix) {
                return Err(Reject::Replayed);
            }
        }
        Ok(grant)
    }

    /// The renewed token to hand back for a request `grant` opened, when the token asks for
    /// renewal (`cdniets`, `cdnistt`) and a renewal key is configured.
    pub fn renewal(
        &self,
        grant: &Grant,
        facts: &RequestFacts<'_>,
        now_unix: u64,
    ) -> Option<Renewed> {
        let ask = grant.cdni.renewal?;
        let key = self.renewal_key.as_ref()?;
        let cookie = match ask.transport {
            Transport::Cookie => Some(self.renewal_cookie.as_deref()?),
            Transport::Header => None,
        };
        let token = match key.renew(&grant.claims.all, ask.ets, now_unix, self.replay.is_some()) {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(error = %e, "could not sign a renewed token");
                return None;
            }
        };
        Some(match cookie {
            Some(name) => Renewed {
                name: http::header::SET_COOKIE,
                value: set_cookie(
                    name,
                    &token,
                    &cookie_path(facts.path, ask.depth),
                    ask.ets,
                    self.uri_scheme == "https",
                ),
            },
            None => Renewed {
                name: self.renewal_header.clone(),
                value: token,
            },
        })
    }

    /// The checks made on every request, cached token or not.
    fn check_request(
        &self,
        grant: &Grant,
        facts: &RequestFacts<'_>,
        now_unix: u64,
    ) -> Result<(), Reject> {
        let claims = &grant.claims;
        self.policy.check_time(claims.exp, claims.nbf, now_unix)?;
        if self
            .denylist
            .is_revoked(claims.jti.as_deref(), claims.sub.as_deref())
        {
            return Err(Reject::Revoked);
        }
        match &grant.scope {
            ScopeGrant::NotConfigured => {}
            ScopeGrant::Absent if self.allow_unscoped => {}
            ScopeGrant::Absent => return Err(Reject::Unscoped),
            ScopeGrant::Patterns(scope) if scope.covers(facts.path) => {}
            ScopeGrant::Patterns(_) => return Err(Reject::OutOfScope),
        }
        grant.cdni.check(facts.client, || {
            request_uri(&self.uri_scheme, facts.host, facts.path, facts.query)
        })
    }

    /// Signature and claims: what the verified-token cache remembers.
    fn verify_grant(&self, token: &str, now_unix: u64) -> Result<Grant, Reject> {
        if token.len() > self.max_token_bytes {
            return Err(Reject::TooLarge);
        }
        let header = read_header(token)?;
        let keys = self.keys.current();
        let candidates = candidates(&keys, header.kid.as_deref(), header.alg)?;
        let mut verified = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation) {
                Ok(data) => {
                    verified = Some((data.claims, key));
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(map_error(e.kind())),
            }
        }
        let Some((all, key)) = verified else {
            return Err(Reject::BadSignature);
        };
        let issuer = key.issuer.as_deref().or(self.policy.issuer.as_deref());
        let claims = self
            .policy
            .check_for_issuer(all, now_unix, issuer)
            .inspect_err(|reject| self.explain_unset_audience(*reject))?;
        let scope = match &self.scope_claim {
            None => ScopeGrant::NotConfigured,
            Some(name) => match claims.all.get(name) {
                None => ScopeGrant::Absent,
                Some(value) => ScopeGrant::Patterns(Scope::parse(value)?),
            },
        };
        let cdni = Cdni::read(
            &claims.all,
            &CdniPolicy {
                scope_claim: self.scope_claim.as_deref(),
                renews: self.renewal_key.is_some(),
                checks_issuer: issuer.is_some(),
                checks_audience: self.policy.audience.checks(),
                max_lifetime: self.policy.max_lifetime,
            },
        )?;
        Ok(Grant {
            claims,
            scope,
            cdni,
        })
    }

    /// Says once, in the node's log, why tokens with `aud` are refused when no audience is
    /// configured: a node upgraded from a version that did not check `aud` then refuses
    /// tokens it used to accept, and the operator must choose.
    fn explain_unset_audience(&self, reject: Reject) {
        if reject == Reject::WrongAudience
            && self.policy.audience == AudienceRule::Unset
            && !self.warned_unset_audience.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "a token carrying `aud` was refused (401 wrong_audience): auth.audience is not \
                 set, so this node accepts no token meant for a named recipient; set \
                 auth.audience to the value the platform puts in `aud` for this CDN, or \
                 auth.ignore_audience: true to accept any `aud` (said once)"
            );
        }
    }

    /// The client's address: the socket peer, or from the trusted-proxy header chain.
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        headers: &http::HeaderMap,
    ) -> Option<IpAddr> {
        self.client_address.find(peer, headers)
    }

    /// True once every key source has loaded (JWKS URLs are fetched after start-up).
    pub fn keys_ready(&self) -> bool {
        self.keys.ready()
    }

    /// Keys in use now.
    pub fn keys_loaded(&self) -> usize {
        self.keys.current().len()
    }

    /// Time since the stalest key source was last loaded or confirmed.
    pub fn key_set_age(&self) -> Duration {
        self.keys.age()
    }

    /// True when some keys come from a JWKS URL, so an unknown `kid` may become known.
    pub fn has_key_urls(&self) -> bool {
        self.keys.has_urls()
    }

    /// Fetches the JWKS URLs again for a token with an unknown `kid` and waits for the
    /// round (single-flight, rate-limited); true when a round finished.
    pub async fn fetch_for_unknown_kid(&self) -> bool {
        self.keys.fetch_for_unknown_kid().await
    }

    /// Resolves when a request asked for a JWKS fetch (for the reloader).
    pub async fn key_fetch_wanted(&self) {
        self.keys.fetch_wanted().await
    }

    /// Loads what is due (see [`KeyStore::refresh`]); voids cached verifications when the
    /// keys changed. Returns the result by source.
    pub async fn refresh_keys(&self, forced: bool) -> Vec<(String, Result<usize, String>)> {
        let (results, changed) = self.keys.refresh(forced).await;
        if changed {
            self.new_epoch();
        }
        results
    }

    /// Voids every cached verification (keys or the denylist changed).
    fn new_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// Reads the denylist file again if it changed.
    pub fn reload_denylist(&self) -> Reloaded {
        let result = self.denylist.reload();
        if result == Reloaded::Changed {
            self.new_epoch();
        }
        result
    }

    /// Adds (`revoke: true`) or removes an admin denylist entry; true when it changed.
    pub fn set_denied(&self, kind: DenyKind, value: &str, revoke: bool) -> bool {
        let changed = if revoke {
            self.denylist.add(kind, value)
        } else {
            self.denylist.remove(kind, value)
        };
        if changed {
            self.new_epoch();
        }
        changed
    }

    /// Adds or removes an entry of the fleet's revocation rules; true when it changed.
    pub fn set_fleet_denied(&self, kind: DenyKind, value: &str, revoke: bool) -> bool {
        let changed = self.denylist.set_fleet(kind, value, revoke);
        if changed {
            self.new_epoch();
        }
        changed
    }

    /// Replaces the fleet's entries (its rules were listed again).
    pub fn replace_fleet_denied(&self, entries: crate::auth::denylist::Entries) {
        self.denylist.replace_fleet(entries);
        self.new_epoch();
    }

    /// The denylist, one `KIND VALUE` a line.
    pub fn denylist_listing(&self) -> String {
        self.denylist.listing()
    }

    /// Entries on the denylist.
    pub fn denylist_len(&self) -> usize {
        self.denylist.len()
    }
}

/// The keys to try, in configuration order: those named by `kid`, or every key pinned to the
/// header's algorithm when there is no `kid`.
fn candidates<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&'a str>,
    alg: jsonwebtoken::Algorithm,
) -> Result<impl Iterator<Item = &'a VerifyKey>, Reject> {
    match kid {
        Some(kid) => {
            let mut named = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Err(Reject::UnknownKey);
            }
            if !named.any(|k| k.algorithm == alg) {
                return Err(Reject::WrongAlgorithm);
            }
            Ok(Candidates::Named(keys.iter(), kid, alg))
        }
        None => {
            if !keys.iter().any(|k| k.algorithm == alg) {
                return Err(Reject::WrongAlgorithm);
            }
            Ok(Candidates::Pinned(keys.iter(), alg))
        }
    }
}

/// Keys to try: those named by `kid`, or every key pinned to the header's algorithm.
enum Candidates<'a> {
    Named(
        std::slice::Iter<'a, VerifyKey>,
        &'a str,
        jsonwebtoken::Algorithm,
    ),
    Pinned(std::slice::Iter<'a, VerifyKey>, jsonwebtoken::Algorithm),
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a VerifyKey;

    fn next(&mut self) -> Option<&'a VerifyKey> {
        match self {
            Candidates::Named(keys, kid, alg) => {
                keys.find(|k| k.kid.as_deref() == Some(*kid) && k.algorithm == *alg)
            }
            Candidates::Pinned(keys, alg) => keys.find(|k| k.algorithm == *alg),
        }
    }
}

fn map_error(kind: &ErrorKind) -> Reject {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Reject::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => Reject::WrongAlgorithm,
        _ => Reject::Malformed,
    }
}
