//! Entry points for the fuzz targets in `fuzz/`: the parsers that read what
//! a client, a token issuer or the disk hands the node, reachable without
//! building a node. Not an API: nothing here is stable, and the node itself
//! never goes through this module.

/// The `Range` header: its syntax, the plan against an object's length, and
/// the rewrite of the response header.
pub mod range {
    pub use crate::range::apply;
    pub use crate::range::plan::{MAX_PARTS, Plan, resolve};
    pub use crate::range::spec::{MAX_SPECS, Parsed, Spec, parse};
}

/// The canonical path and the canonical query.
pub mod request {
    pub use crate::request::path::{PathError, canonicalize, canonicalize_bytes};
    pub use crate::request::query::{Pair, QueryError, canonical, is_forbidden, parse};
}

/// Finding the token in a request: query parameters, headers, cookies.
pub mod token {
    pub use crate::auth::settings::default_token_sources;
    pub use crate::auth::{Found, Reject, SourceKind, TokenSource, find_token, is_token_param};
}

/// The token gate: the JOSE header read before any key is chosen, and past
/// the signature the claims as a verified token's are read (registered
/// claims, scope, RFC 9246 claims with `cdniuc`) and checked against a
/// request.
pub mod jwt {
    use std::path::Path;

    use aws_lc_rs::hmac;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub use crate::auth::{Grant, Reject, RequestFacts, Verifier};
    pub use jsonwebtoken::Algorithm;

    use crate::auth::settings::{AuthConfig, AuthSettings, KeySettings, RenewalKeySettings};

    /// The HMAC secret of the gate's one key, `kid` [`KID`].
    const SECRET: &str = "fuzzing-secret-of-at-least-32-bytes";
    const SECRET_ENV: &str = "FUZZ_HS256_SECRET";
    /// The `kid` of the gate's key (and of renewed tokens).
    pub const KID: &str = "k1";
    /// `auth.issuer`.
    pub const ISSUER: &str = "https://issuer.example";
    /// `auth.audience`.
    pub const AUDIENCE: &str = "cdn-node";
    /// `auth.scope_claim`.
    pub const SCOPE_CLAIM: &str = "paths";

    /// A verifier with every claim check on (issuer, audience, scope claim,
    /// renewal) and one HS256 key, and the means to sign any header and
    /// claims bytes with that key: a fuzzer's claims then get past the
    /// signature to the claim parsing.
    pub struct Gate {
        verifier: Verifier,
        key: hmac::Key,
    }

    impl Gate {
        pub fn new() -> Gate {
            let settings = AuthSettings {
                keys: vec![KeySettings {
                    kid: Some(KID.into()),
                    algorithm: Some("HS256".into()),
                    secret_env: Some(SECRET_ENV.into()),
                    ..KeySettings::default()
                }],
                issuer: Some(ISSUER.into()),
                audience: Some(AUDIENCE.into()),
                scope_claim: Some(SCOPE_CLAIM.into()),
                allow_unscoped_tokens: true,
                renewal_key: Some(RenewalKeySettings {
                    kid: Some(KID.into()),
                    algorithm: Some("HS256".into()),
                    secret_env: Some(SECRET_ENV.into()),
                    ..RenewalKeySettings::default()
                }),
                ..AuthSettings::default()
            };
            let env = |name: &str| (name == SECRET_ENV).then(|| SECRET.into());
            let config = AuthConfig::from_section(&settings, Path::new("."), &env)
                .unwrap_or_else(|problems| panic!("the fuzzing gate's settings: {problems:?}"));
            Gate {
                verifier: Verifier::new(config),
                key: hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes()),
            }
        }

        /// `header` and `claims` (any bytes) as a compact JWS signed with
        /// the gate's key.
        pub fn sign(&self, header: &[u8], claims: &[u8]) -> String {
            let mut token = URL_SAFE_NO_PAD.encode(header);
            token.push('.');
            token.push_str(&URL_SAFE_NO_PAD.encode(claims));
            let tag = hmac::sign(&self.key, token.as_bytes());
            token.push('.');
            token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
            token
        }

        pub fn verifier(&self) -> &Verifier {
            &self.verifier
        }
    }

    impl Default for Gate {
        fn default() -> Gate {
            Gate::new()
        }
    }
}

/// The store's meta file (`src/cache/store/FORMAT.md`) and the Pingora meta
/// it carries.
pub mod store {
    pub use crate::cache::store::format::{
        DecodeError, KIND_META, MAGIC, MAX_META_LEN, ObjectHeader, VERSION, checksum, decode_meta,
        encode_meta, meta_declared_len,
    };

    use crate::cache::store::StoredMeta;

    /// Decodes the two halves of a stored `CacheMeta` as a hit does: the
    /// first decode in full, the second from what the first learnt. Returns
    /// both metas serialized, `None` when the bytes do not decode.
    #[allow(clippy::type_complexity)]
    pub fn decode_twice(
        internal: &[u8],
        header: &[u8],
    ) -> Option<((Vec<u8>, Vec<u8>), (Vec<u8>, Vec<u8>))> {
        let stored = StoredMeta::new(internal.to_vec(), header.to_vec());
        let first = stored.decode().ok()?;
        let second = stored
            .decode()
            .unwrap_or_else(|e| panic!("a meta that decoded once fails the second time: {e}"));
        let view = stored.view().expect("a decoded meta has a view");
        assert_eq!(view.fresh_until, first.fresh_until());
        assert_eq!(view.variance, first.variance());
        Some((first.serialize().ok()?, second.serialize().ok()?))
    }
}
