//! The registered claims (RFC 7519 4.1) through `Verifier`, loaded from settings as at
//! start-up: `aud` under each audience setting, types checked whatever the configuration,
//! and the configuration errors of `audience` and `ignore_audience`.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::keys::*;
use crate::auth::reject::Reject;
use crate::auth::settings::{Audience, AuthSettings, with_env};
use crate::auth::verifier::Verifier;

fn hs(changes: Value) -> String {
    signed(Algorithm::HS256, Some("hs"), &claims(changes))
}

/// The fixture HS256 key, `auth.issuer` set, and the given audience settings.
fn with_audience(audience: Option<Audience>, ignore_audience: bool) -> AuthSettings {
    AuthSettings {
        audience,
        ignore_audience,
        ..settings(vec![key_entry(Some("hs"), Algorithm::HS256)])
    }
}

/// `aud` as a token carries it (`null`: no `aud`), and the answer under: `audience:
/// [cdn-a, cdn-b]`, no audience, `ignore_audience: true`.
#[test]
fn audience_settings_table() {
    let two = load(&with_audience(
        Some(vec!["cdn-a".to_owned(), "cdn-b".to_owned()].into()),
        false,
    ));
    let unset = load(&with_audience(None, false));
    let ignored = load(&with_audience(None, true));
    let ok = Ok(());
    let refused = Err(Reject::WrongAudience);
    let malformed = Err(Reject::Malformed);
    let cases: Vec<(Value, [Result<(), Reject>; 3])> = vec![
        (json!(null), [refused, ok, ok]),
        (json!("cdn-a"), [ok, refused, ok]),
        (json!("cdn-b"), [ok, refused, ok]),
        (json!(["billing-api", "cdn-b"]), [ok, refused, ok]),
        // Minted for another service with the same key.
        (json!("billing-api"), [refused, refused, ok]),
        (json!(["billing-api"]), [refused, refused, ok]),
        (json!([]), [refused, refused, ok]),
        (json!(123), [malformed, malformed, malformed]),
        (json!({"cdn-a": true}), [malformed, malformed, malformed]),
        (json!(["cdn-a", 7]), [malformed, malformed, malformed]),
    ];
    for (aud, wants) in cases {
        let token = hs(json!({ "aud": aud }));
        for ((name, v), want) in [
            ("[cdn-a, cdn-b]", &two),
            ("unset", &unset),
            ("ignored", &ignored),
        ]
        .into_iter()
        .zip(wants)
        {
            assert_eq!(
                v.verify(&token, NOW).map(|_| ()),
                want,
                "aud {aud} with {name}"
            );
        }
    }
}

/// `iss`, `sub`, `jti`, the NumericDates and `aud` are typed even with no issuer and no
/// audience configured, and with a key of its own issuer.
#[test]
fn registered_claims_are_typed_whatever_the_configuration() {
    let open = load(&AuthSettings {
        issuer: None,
        ..with_audience(None, true)
    });
    let mut own_issuer = key_entry(Some("hs"), Algorithm::HS256);
    own_issuer.issuer = Some("https://other.example".into());
    let per_key = load(&settings(vec![own_issuer]));
    let cases = [
        json!({"iss": 7, "aud": null}),
        json!({"iss": {"url": ISSUER}, "aud": null}),
        json!({"sub": 1}),
        json!({"jti": ["j1"]}),
        json!({"exp": "tomorrow"}),
        json!({"exp": -1}),
        json!({"nbf": true}),
        json!({"iat": {}}),
        json!({"aud": 123}),
    ];
    for changes in cases {
        let token = hs(changes.clone());
        assert_eq!(
            open.verify(&token, NOW).map(|_| ()),
            Err(Reject::Malformed),
            "{changes}"
        );
        assert_eq!(
            per_key.verify(&token, NOW).map(|_| ()),
            Err(Reject::Malformed),
            "{changes} with a key's issuer"
        );
    }
    assert!(open.verify(&hs(json!({"iss": "anyone"})), NOW).is_ok());
}

/// `cdnicrit` may name `aud` when the node decides on it, not when it ignores it.
#[test]
fn aud_is_understood_as_critical_unless_ignored() {
    let token = hs(json!({"aud": null, "cdnicrit": ["aud"]}));
    assert!(
        load(&with_audience(None, false))
            .verify(&token, NOW)
            .is_ok()
    );
    assert_eq!(
        load(&with_audience(None, true))
            .verify(&token, NOW)
            .map(|_| ()),
        Err(Reject::UnknownCritical)
    );
}

#[test]
fn audience_problems_name_the_key_and_the_fix() {
    let cases: Vec<(AuthSettings, &str, &[&str])> = vec![
        (
            with_audience(Some("cdn-node".into()), true),
            "auth.audience",
            &["auth.ignore_audience", "remove"],
        ),
        (
            with_audience(Some(Vec::<String>::new().into()), false),
            "auth.audience",
            &["empty list"],
        ),
        (
            with_audience(Some("".into()), false),
            "auth.audience",
            &["empty"],
        ),
        (
            with_audience(Some(vec!["cdn-a".to_owned(), String::new()].into()), false),
            "auth.audience[1]",
            &["empty"],
        ),
    ];
    for (settings, key, needles) in cases {
        let problems = with_env(&settings, &fixtures(), &[]).expect_err(key);
        let problem = problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no problem at {key}: {problems:?}"));
        for needle in needles {
            assert!(problem.message.contains(needle), "{key}: {problem}");
        }
    }
    assert!(Verifier::from_settings(&with_audience(None, true), &fixtures()).is_ok());
}
