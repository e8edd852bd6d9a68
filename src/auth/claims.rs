//! The claims of a verified token and the checks made on them against the caller's clock.

use serde_json::{Map, Value};

use crate::auth::reject::Reject;

/// The claims of a token whose signature verified and whose claims passed the checks.
/// Identity is `sub`/`jti`, never the token text (signatures can be malleable).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub sub: Option<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    /// Every claim, as sent.
    pub all: Map<String, Value>,
}

/// What the configuration asks of every token's claims.
#[derive(Debug, Clone)]
pub(crate) struct ClaimPolicy {
    pub issuer: Option<String>,
    pub audience: AudienceRule,
    pub require_exp: bool,
    pub leeway: u64,
    /// Longest `exp - iat`, and how far ahead of `now` `exp` may be (plus the leeway).
    pub max_lifetime: u64,
}

/// What `aud` must be (RFC 7519 4.1.3: a recipient that does not find itself in `aud`
/// refuses the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AudienceRule {
    /// `auth.audience`: `aud` is required and must be, or contain, one of these.
    OneOf(Vec<String>),
    /// Neither `audience` nor `ignore_audience`: a token carrying `aud` is meant for
    /// another recipient; one without `aud` passes.
    Unset,
    /// `ignore_audience: true`: `aud` is typed, never matched.
    Ignored,
}

impl AudienceRule {
    /// True when `aud` decides anything (for `cdnicrit`: the node understands `aud`).
    pub fn checks(&self) -> bool {
        !matches!(self, AudienceRule::Ignored)
    }

    /// Whether a token with these `aud` values (`None`: no `aud`) is for this node.
    fn admits(&self, aud: Option<&[&str]>) -> bool {
        match (self, aud) {
            (AudienceRule::Ignored, _) | (AudienceRule::Unset, None) => true,
            (AudienceRule::Unset, Some(_)) | (AudienceRule::OneOf(_), None) => false,
            (AudienceRule::OneOf(ours), Some(theirs)) => {
                theirs.iter().any(|aud| ours.iter().any(|our| our == aud))
            }
        }
    }
}

impl ClaimPolicy {
    /// Types the registered claims and checks them. Time checks use `now`, never a clock.
    #[cfg(test)]
    pub fn check(&self, all: Map<String, Value>, now: u64) -> Result<Claims, Reject> {
        self.check_for_issuer(all, now, self.issuer.as_deref())
    }

    /// [`ClaimPolicy::check`] with the issuer required by the key that verified the token.
    ///
    /// First every registered claim present is typed, whatever the configuration
    /// (`malformed` otherwise): `iss`, `sub`, `jti` strings; `exp`, `nbf`, `iat`
    /// NumericDates; `aud` a string or an array of strings. Then `exp` is required (when
    /// configured), then the clock (`exp`, `nbf`, `iat`), the lifetime, the issuer and the
    /// audience.
    pub fn check_for_issuer(
        &self,
        all: Map<String, Value>,
        now: u64,
        issuer: Option<&str>,
    ) -> Result<Claims, Reject> {
        let exp = numeric_date(&all, "exp", Round::Down)?;
        let nbf = numeric_date(&all, "nbf", Round::Up)?;
        let iat = numeric_date(&all, "iat", Round::Up)?;
        let iss = string_claim(&all, "iss")?;
        let sub = string_claim(&all, "sub")?;
        let jti = string_claim(&all, "jti")?;
        let aud = audience_claim(&all)?;
        if exp.is_none() && self.require_exp {
            return Err(Reject::MissingClaim("exp"));
        }
        self.check_time(exp, nbf, now)?;
        if let Some(iat) = iat
            && iat > now.saturating_add(self.leeway)
        {
            return Err(Reject::NotYetValid);
        }
        if let Some(exp) = exp {
            let too_long = iat.is_some_and(|iat| exp.saturating_sub(iat) > self.max_lifetime);
            let too_far = exp > now.saturating_add(self.max_lifetime + self.leeway);
            if too_long || too_far {
                return Err(Reject::Lifetime);
            }
        }
        if let Some(issuer) = issuer
            && iss.as_deref() != Some(issuer)
        {
            return Err(Reject::WrongIssuer);
        }
        if !self.audience.admits(aud.as_deref()) {
            return Err(Reject::WrongAudience);
        }
        Ok(Claims {
            sub,
            exp,
            nbf,
            iat,
            jti,
            all,
        })
    }

    /// The checks that depend on the clock alone (`exp`, `nbf`), made again on every request
    /// whose token was verified before. `exp` only ever gets nearer, so a lifetime that
    /// passed once still passes.
    pub fn check_time(&self, exp: Option<u64>, nbf: Option<u64>, now: u64) -> Result<(), Reject> {
        if let Some(exp) = exp
            && now.saturating_sub(self.leeway) > exp
        {
            return Err(Reject::Expired);
        }
        if let Some(nbf) = nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(Reject::NotYetValid);
        }
        Ok(())
    }
}

/// `aud`: one string or an array of strings (RFC 7519 4.1.3); any other shape is
/// malformed. An empty array is well-formed but names no recipient, so it never matches.
fn audience_claim(all: &Map<String, Value>) -> Result<Option<Vec<&str>>, Reject> {
    match all.get("aud") {
        None => Ok(None),
        Some(Value::String(one)) => Ok(Some(vec![one.as_str()])),
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| v.as_str().ok_or(Reject::Malformed))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Reject::Malformed),
    }
}

/// Which way a NumericDate with a fraction of a second goes: never towards a longer
/// validity. `exp` is rounded down, `nbf` and `iat` up.
#[derive(Debug, Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// 2^64: the first number of seconds a `u64` cannot hold.
const U64_END: f64 = 18_446_744_073_709_551_616.0;

/// A NumericDate (RFC 7519 2): a JSON number of seconds since the epoch, at least 0 and
/// less than 2^64; a fraction is rounded as `round` says. Anything else is malformed.
fn numeric_date(all: &Map<String, Value>, name: &str, round: Round) -> Result<Option<u64>, Reject> {
    let Some(value) = all.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(Reject::Malformed);
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    // A negative integer, or a number written with a fraction or an exponent.
    match n.as_f64() {
        Some(f) if (0.0..U64_END).contains(&f) => {
            let whole = match round {
                Round::Down => f.floor(),
                Round::Up => f.ceil(),
            };
            // In range: `whole` is below 2^64 (f64s that large are whole numbers already).
            Ok(Some(whole as u64))
        }
        _ => Err(Reject::Malformed),
    }
}

/// A claim that must be a string when present.
fn string_claim(all: &Map<String, Value>, name: &str) -> Result<Option<String>, Reject> {
    match all.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reject::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn policy() -> ClaimPolicy {
        ClaimPolicy {
            issuer: Some("https://learn.example".into()),
            audience: AudienceRule::OneOf(vec!["cdn-node".into()]),
            require_exp: true,
            leeway: 5,
            max_lifetime: 86_400,
        }
    }

    /// No issuer, no audience, no `exp` required: only what holds whatever the
    /// configuration.
    fn open() -> ClaimPolicy {
        ClaimPolicy {
            issuer: None,
            audience: AudienceRule::Unset,
            require_exp: false,
            leeway: 0,
            max_lifetime: 86_400,
        }
    }

    /// A JSON value from its text, for numbers `json!` cannot write.
    fn raw(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }

    fn with(extra: Value) -> Map<String, Value> {
        let mut base = json!({"iss": "https://learn.example", "aud": "cdn-node", "exp": NOW + 60});
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        match base {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn claim_table() {
        let cases: Vec<(&str, Value, Result<(), Reject>)> = vec![
            ("valid", json!({}), Ok(())),
            ("exp just inside leeway", json!({"exp": NOW - 5}), Ok(())),
            (
                "exp beyond leeway",
                json!({"exp": NOW - 6}),
                Err(Reject::Expired),
            ),
            (
                "exp u64::MAX",
                json!({"exp": u64::MAX}),
                Err(Reject::Lifetime),
            ),
            (
                "exp at the lifetime limit",
                json!({"exp": NOW + 86_400 + 5}),
                Ok(()),
            ),
            (
                "exp a second beyond",
                json!({"exp": NOW + 86_400 + 6}),
                Err(Reject::Lifetime),
            ),
            (
                "exp - iat at the limit",
                json!({"iat": NOW - 100, "exp": NOW - 100 + 86_400}),
                Ok(()),
            ),
            (
                "exp - iat too long",
                json!({"iat": NOW - 100, "exp": NOW - 99 + 86_400}),
                Err(Reject::Lifetime),
            ),
            (
                "iat far in the past, exp near",
                json!({"iat": 0, "exp": NOW + 60}),
                Err(Reject::Lifetime),
            ),
            (
                "iat in the future",
                json!({"iat": NOW + 6}),
                Err(Reject::NotYetValid),
            ),
            ("iat within leeway", json!({"iat": NOW + 5}), Ok(())),
            ("iat string", json!({"iat": "now"}), Err(Reject::Malformed)),
            ("iat negative", json!({"iat": -1}), Err(Reject::Malformed)),
            // Fractions never lengthen a token's validity.
            (
                "exp fractional",
                json!({"exp": (NOW + 10) as f64 + 0.5}),
                Ok(()),
            ),
            (
                "exp fraction rounded down",
                json!({"exp": (NOW - 6) as f64 + 0.9}),
                Err(Reject::Expired),
            ),
            (
                "nbf fraction rounded up",
                json!({"nbf": (NOW + 5) as f64 + 0.1}),
                Err(Reject::NotYetValid),
            ),
            (
                "nbf fraction inside leeway",
                json!({"nbf": (NOW + 4) as f64 + 0.1}),
                Ok(()),
            ),
            (
                "iat fraction rounded up",
                json!({"iat": (NOW + 5) as f64 + 0.1}),
                Err(Reject::NotYetValid),
            ),
            (
                "exp with an exponent",
                raw(&format!(r#"{{"exp": {}e0}}"#, NOW + 60)),
                Ok(()),
            ),
            ("exp negative", json!({"exp": -1}), Err(Reject::Malformed)),
            (
                "exp negative fraction",
                json!({"exp": -0.5}),
                Err(Reject::Malformed),
            ),
            (
                "exp 2^64",
                raw(r#"{"exp": 18446744073709551616}"#),
                Err(Reject::Malformed),
            ),
            (
                "exp 1e300",
                raw(r#"{"exp": 1e300}"#),
                Err(Reject::Malformed),
            ),
            (
                "exp below 2^64, too far",
                raw(r#"{"exp": 1.8e19}"#),
                Err(Reject::Lifetime),
            ),
            (
                "exp string",
                json!({"exp": "tomorrow"}),
                Err(Reject::Malformed),
            ),
            ("exp null", json!({"exp": null}), Err(Reject::Malformed)),
            ("exp true", json!({"exp": true}), Err(Reject::Malformed)),
            (
                "exp array",
                json!({"exp": [NOW + 60]}),
                Err(Reject::Malformed),
            ),
            ("nbf past", json!({"nbf": NOW - 100}), Ok(())),
            ("nbf inside leeway", json!({"nbf": NOW + 5}), Ok(())),
            (
                "nbf future",
                json!({"nbf": NOW + 6}),
                Err(Reject::NotYetValid),
            ),
            (
                "nbf u64::MAX",
                json!({"nbf": u64::MAX}),
                Err(Reject::NotYetValid),
            ),
            ("nbf string", json!({"nbf": "0"}), Err(Reject::Malformed)),
            (
                "iss wrong",
                json!({"iss": "https://evil.example"}),
                Err(Reject::WrongIssuer),
            ),
            ("iss number", json!({"iss": 7}), Err(Reject::Malformed)),
            (
                "iss object",
                json!({"iss": {"a": 1}}),
                Err(Reject::Malformed),
            ),
            (
                "iss array",
                json!({"iss": ["https://learn.example"]}),
                Err(Reject::Malformed),
            ),
            ("iss null", json!({"iss": null}), Err(Reject::Malformed)),
            ("aud array", json!({"aud": ["x", "cdn-node"]}), Ok(())),
            (
                "aud wrong",
                json!({"aud": "other"}),
                Err(Reject::WrongAudience),
            ),
            (
                "aud array without",
                json!({"aud": ["x", "y"]}),
                Err(Reject::WrongAudience),
            ),
            ("aud number", json!({"aud": 1}), Err(Reject::Malformed)),
            (
                "aud object",
                json!({"aud": {"cdn-node": true}}),
                Err(Reject::Malformed),
            ),
            (
                "aud mixed array",
                json!({"aud": ["cdn-node", 3]}),
                Err(Reject::Malformed),
            ),
            (
                "aud empty array",
                json!({"aud": []}),
                Err(Reject::WrongAudience),
            ),
            ("aud null", json!({"aud": null}), Err(Reject::Malformed)),
            ("sub number", json!({"sub": 42}), Err(Reject::Malformed)),
            ("sub null", json!({"sub": null}), Err(Reject::Malformed)),
            ("jti object", json!({"jti": {}}), Err(Reject::Malformed)),
            ("jti number", json!({"jti": 1}), Err(Reject::Malformed)),
            // Typing comes first: a wrong type is malformed even when another check fails.
            (
                "expired, iss a number",
                json!({"exp": NOW - 100, "iss": 7}),
                Err(Reject::Malformed),
            ),
            (
                "wrong audience, sub a number",
                json!({"aud": "other", "sub": 1}),
                Err(Reject::Malformed),
            ),
        ];
        for (name, extra, want) in cases {
            let got = policy().check(with(extra), NOW).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn audience_rules() {
        use AudienceRule::*;
        let two = || OneOf(vec!["cdn-a".into(), "cdn-b".into()]);
        let malformed = Err(Reject::Malformed);
        let refused = Err(Reject::WrongAudience);
        // (aud, or None for no aud) -> under OneOf([cdn-a, cdn-b]), Unset, Ignored.
        type Answers = [Result<(), Reject>; 3];
        let cases: Vec<(Option<Value>, Answers)> = vec![
            (None, [refused, Ok(()), Ok(())]),
            (Some(json!("cdn-a")), [Ok(()), refused, Ok(())]),
            (Some(json!("cdn-b")), [Ok(()), refused, Ok(())]),
            (Some(json!("billing-api")), [refused, refused, Ok(())]),
            (Some(json!("CDN-A")), [refused, refused, Ok(())]),
            (
                Some(json!(["billing-api", "cdn-b"])),
                [Ok(()), refused, Ok(())],
            ),
            (Some(json!(["billing-api"])), [refused, refused, Ok(())]),
            (Some(json!([])), [refused, refused, Ok(())]),
            (Some(json!(123)), [malformed, malformed, malformed]),
            (Some(json!({"cdn-a": 1})), [malformed, malformed, malformed]),
            (Some(json!(["cdn-a", 1])), [malformed, malformed, malformed]),
            (Some(json!([["cdn-a"]])), [malformed, malformed, malformed]),
            (Some(json!(null)), [malformed, malformed, malformed]),
            (Some(json!(true)), [malformed, malformed, malformed]),
        ];
        for (aud, wants) in cases {
            for (rule, want) in [two(), Unset, Ignored].into_iter().zip(wants) {
                let mut all = with(json!({}));
                all.remove("aud");
                if let Some(aud) = &aud {
                    all.insert("aud".into(), aud.clone());
                }
                let policy = ClaimPolicy {
                    audience: rule.clone(),
                    ..policy()
                };
                let got = policy.check(all, NOW).map(|_| ());
                assert_eq!(got, want, "aud {aud:?} under {rule:?}");
            }
        }
    }

    #[test]
    fn registered_claims_are_typed_whatever_the_configuration() {
        let cases: Vec<(&str, Value)> = vec![
            ("iss", json!(7)),
            ("iss", json!({"url": "https://learn.example"})),
            ("iss", json!(["https://learn.example"])),
            ("sub", json!(42)),
            ("jti", json!({})),
            ("exp", json!("tomorrow")),
            ("nbf", json!(-5)),
            ("iat", json!([NOW])),
            ("aud", json!(123)),
            ("aud", json!({"cdn-node": true})),
        ];
        for (claim, value) in cases {
            for rule in [AudienceRule::Unset, AudienceRule::Ignored] {
                let mut all = Map::new();
                all.insert(claim.into(), value.clone());
                let policy = ClaimPolicy {
                    audience: rule.clone(),
                    ..open()
                };
                assert_eq!(
                    policy.check(all, NOW),
                    Err(Reject::Malformed),
                    "{claim}: {value} under {rule:?}"
                );
            }
        }
        // Well-typed claims pass the open policy.
        let all = with(json!({"sub": "u1", "jti": "j1", "iat": NOW, "nbf": NOW}));
        let mut all = all;
        all.remove("aud");
        assert!(open().check(all, NOW).is_ok());
    }

    #[test]
    fn missing_claims() {
        let mut all = with(json!({}));
        all.remove("exp");
        assert_eq!(
            policy().check(all.clone(), NOW),
            Err(Reject::MissingClaim("exp"))
        );
        let lax = ClaimPolicy {
            require_exp: false,
            ..policy()
        };
        assert!(lax.check(all, NOW).is_ok());
        let mut all = with(json!({}));
        all.remove("iss");
        assert_eq!(policy().check(all, NOW), Err(Reject::WrongIssuer));
        let mut all = with(json!({}));
        all.remove("aud");
        assert_eq!(policy().check(all, NOW), Err(Reject::WrongAudience));
    }

    #[test]
    fn typed_claims_are_returned() {
        let all = with(json!({"sub": "u1", "jti": "j1", "iat": NOW, "plan": "pro"}));
        let claims = policy().check(all, NOW).expect("valid");
        assert_eq!(claims.sub.as_deref(), Some("u1"));
        assert_eq!(claims.jti.as_deref(), Some("j1"));
        assert_eq!(claims.exp, Some(NOW + 60));
        assert_eq!(claims.iat, Some(NOW));
        assert_eq!(claims.all.get("plan"), Some(&json!("pro")));
        let all = with(json!({"exp": (NOW + 60) as f64 + 0.75, "nbf": (NOW - 10) as f64 + 0.25}));
        let claims = policy().check(all, NOW).expect("valid");
        assert_eq!((claims.exp, claims.nbf), (Some(NOW + 60), Some(NOW - 9)));
    }
}
