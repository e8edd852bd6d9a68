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
    pub audience: Option<String>,
    pub require_exp: bool,
    pub leeway: u64,
    /// Longest `exp - iat`, and how far ahead of `now` `exp` may be (plus the leeway).
    pub max_lifetime: u64,
}

impl ClaimPolicy {
    /// Types the registered claims and checks them. Time checks use `now`, never a clock.
    #[cfg(test)]
    pub fn check(&self, all: Map<String, Value>, now: u64) -> Result<Claims, Reject> {
        self.check_for_issuer(all, now, self.issuer.as_deref())
    }

    /// [`ClaimPolicy::check`] with the issuer required by the key that verified the token.
    pub fn check_for_issuer(
        &self,
        all: Map<String, Value>,
        now: u64,
        issuer: Option<&str>,
    ) -> Result<Claims, Reject> {
        let exp = numeric_date(&all, "exp")?;
        let nbf = numeric_date(&all, "nbf")?;
        let iat = numeric_date(&all, "iat")?;
        let sub = string_claim(&all, "sub")?;
        let jti = string_claim(&all, "jti")?;
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
        if let Some(issuer) = issuer {
            match all.get("iss") {
                Some(Value::String(iss)) if iss == issuer => {}
                _ => return Err(Reject::WrongIssuer),
            }
        }
        if let Some(audience) = &self.audience
            && !audience_matches(all.get("aud"), audience)
        {
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

/// `aud` is one string or an array of strings; any other shape never matches.
fn audience_matches(aud: Option<&Value>, wanted: &str) -> bool {
    match aud {
        Some(Value::String(one)) => one == wanted,
        Some(Value::Array(many)) => {
            many.iter().all(Value::is_string) && many.iter().any(|v| v.as_str() == Some(wanted))
        }
        _ => false,
    }
}

/// A NumericDate: a non-negative number of seconds; fractions are cut off.
fn numeric_date(all: &Map<String, Value>, name: &str) -> Result<Option<u64>, Reject> {
    match all.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                Ok(Some(secs))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
                    _ => Err(Reject::Malformed),
                }
            }
        }
        Some(_) => Err(Reject::Malformed),
    }
}

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
            audience: Some("cdn-node".into()),
            require_exp: true,
            leeway: 5,
            max_lifetime: 86_400,
        }
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
            (
                "exp fractional",
                json!({"exp": (NOW + 10) as f64 + 0.5}),
                Ok(()),
            ),
            ("exp negative", json!({"exp": -1}), Err(Reject::Malformed)),
            (
                "exp string",
                json!({"exp": "tomorrow"}),
                Err(Reject::Malformed),
            ),
            ("exp null", json!({"exp": null}), Err(Reject::Malformed)),
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
            (
                "iss wrong",
                json!({"iss": "https://evil.example"}),
                Err(Reject::WrongIssuer),
            ),
            ("iss number", json!({"iss": 7}), Err(Reject::WrongIssuer)),
            (
                "iss object",
                json!({"iss": {"a": 1}}),
                Err(Reject::WrongIssuer),
            ),
            (
                "iss array",
                json!({"iss": ["https://learn.example"]}),
                Err(Reject::WrongIssuer),
            ),
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
            ("aud number", json!({"aud": 1}), Err(Reject::WrongAudience)),
            (
                "aud object",
                json!({"aud": {"cdn-node": true}}),
                Err(Reject::WrongAudience),
            ),
            (
                "aud mixed array",
                json!({"aud": ["cdn-node", 3]}),
                Err(Reject::WrongAudience),
            ),
            (
                "aud empty array",
                json!({"aud": []}),
                Err(Reject::WrongAudience),
            ),
            ("sub number", json!({"sub": 42}), Err(Reject::Malformed)),
            ("jti object", json!({"jti": {}}), Err(Reject::Malformed)),
        ];
        for (name, extra, want) in cases {
            let got = policy().check(with(extra), NOW).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
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
        for claim in ["iss", "aud"] {
            let mut all = with(json!({}));
            all.remove(claim);
            assert!(policy().check(all, NOW).is_err(), "{claim}");
        }
        let open = ClaimPolicy {
            issuer: None,
            audience: None,
            require_exp: true,
            leeway: 0,
            max_lifetime: 86_400,
        };
        let all = with(json!({"iss": 7, "aud": {}}));
        assert!(
            open.check(all, NOW).is_ok(),
            "unconfigured iss/aud are not checked"
        );
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
    }
}
