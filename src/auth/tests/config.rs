//! Configuration problems: each names its setting and the fix, never a secret, and all are
//! reported at once.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::keys::*;
use crate::auth::settings::{AuthSettings, KeySettings, with_env};

#[test]
fn config_problems_name_the_key() {
    let secret_file = |file: &str| KeySettings {
        algorithm: Some("HS256".into()),
        secret_file: Some(file.into()),
        ..KeySettings::default()
    };
    let good = key_entry(Some("ok"), Algorithm::HS256);
    let cases: Vec<(&str, AuthSettings, &str, &str)> = vec![
        ("zero keys", settings(vec![]), "auth.keys", "at least one"),
        (
            "empty secret",
            settings(vec![good.clone(), secret_file("hmac-empty.secret")]),
            "auth.keys[1].secret_file",
            "empty",
        ),
        (
            "short secret",
            settings(vec![secret_file("hmac-short.secret")]),
            "auth.keys[0].secret_file",
            "only 8 bytes",
        ),
        (
            "missing secret file",
            settings(vec![secret_file("nope.secret")]),
            "auth.keys[0].secret_file",
            "nope.secret cannot be read",
        ),
        (
            "missing pem",
            settings(vec![KeySettings {
                algorithm: Some("RS256".into()),
                public_key_file: Some("/x/y.pem".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].public_key_file",
            "file /x/y.pem cannot be read",
        ),
        (
            "private pem",
            settings(vec![KeySettings {
                algorithm: Some("ES256".into()),
                public_key_file: Some("ec-p256.pem".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].public_key_file",
            "private key",
        ),
        (
            "pem of other type",
            settings(vec![KeySettings {
                algorithm: Some("RS256".into()),
                public_key_file: Some("ec-p256.pub.pem".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].public_key_file",
            "RSA",
        ),
        (
            "bad algorithm",
            settings(vec![KeySettings {
                algorithm: Some("HS257".into()),
                ..good.clone()
            }]),
            "auth.keys[0].algorithm",
            "\"HS257\"",
        ),
        (
            "none algorithm",
            settings(vec![KeySettings {
                algorithm: Some("none".into()),
                ..good.clone()
            }]),
            "auth.keys[0].algorithm",
            "\"none\"",
        ),
        (
            "missing algorithm",
            settings(vec![KeySettings {
                algorithm: None,
                ..good.clone()
            }]),
            "auth.keys[0].algorithm",
            "missing",
        ),
        (
            "secret for RS256",
            settings(vec![KeySettings {
                algorithm: Some("RS256".into()),
                ..good.clone()
            }]),
            "auth.keys[0].algorithm",
            "public_key_file",
        ),
        (
            "public key for HS256",
            settings(vec![KeySettings {
                algorithm: Some("HS256".into()),
                public_key_file: Some("rsa2048.pub.pem".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].public_key_file",
            "shared secret",
        ),
        (
            "no material",
            settings(vec![KeySettings {
                algorithm: Some("HS256".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0]",
            "no key material",
        ),
        (
            "two materials",
            settings(vec![KeySettings {
                secret_env: Some("S".into()),
                ..good.clone()
            }]),
            "auth.keys[0]",
            "secret_file and secret_env",
        ),
        (
            "duplicate kid",
            settings(vec![good.clone(), good.clone()]),
            "auth.keys",
            "\"ok\"",
        ),
        (
            "empty kid",
            settings(vec![KeySettings {
                kid: Some(String::new()),
                ..good.clone()
            }]),
            "auth.keys[0].kid",
            "empty",
        ),
        (
            "env unset",
            settings(vec![KeySettings {
                algorithm: Some("HS256".into()),
                secret_env: Some("NO_SUCH_VAR".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].secret_env",
            "NO_SUCH_VAR is not set",
        ),
        (
            "env short",
            settings(vec![KeySettings {
                algorithm: Some("HS256".into()),
                secret_env: Some("SHORT".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].secret_env",
            "only 5 bytes",
        ),
        (
            "jwks missing",
            settings(vec![KeySettings {
                jwks_file: Some("nope.json".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].jwks_file",
            "nope.json cannot be read",
        ),
        (
            "jwks not jwks",
            settings(vec![KeySettings {
                jwks_file: Some("ec-p256.pub.pem".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].jwks_file",
            "not a JSON object",
        ),
        (
            "jwks alg conflict",
            settings(vec![KeySettings {
                jwks_file: Some("rfc7515.jwks.json".into()),
                algorithm: Some("RS256".into()),
                ..KeySettings::default()
            }]),
            "auth.keys[0].jwks_file",
            "JWK #0",
        ),
        (
            "leeway too large",
            AuthSettings {
                leeway_seconds: 301,
                ..settings(vec![good.clone()])
            },
            "auth.leeway_seconds",
            "301",
        ),
        (
            "max bytes zero",
            AuthSettings {
                max_token_bytes: 0,
                ..settings(vec![good.clone()])
            },
            "auth.max_token_bytes",
            "0",
        ),
        (
            "empty issuer",
            AuthSettings {
                issuer: Some(String::new()),
                ..settings(vec![good.clone()])
            },
            "auth.issuer",
            "empty",
        ),
        (
            "public prefix",
            AuthSettings {
                public_prefixes: vec!["public/".into()],
                ..settings(vec![good.clone()])
            },
            "auth.public_prefixes[0]",
            "public/",
        ),
        (
            "no sources",
            AuthSettings {
                token_sources: vec![],
                ..settings(vec![good.clone()])
            },
            "auth.token_sources",
            "empty",
        ),
    ];
    let secret = String::from_utf8(fixture("hmac.secret")).unwrap_or_default();
    for (name, s, key, needle) in cases {
        let problems = with_env(&s, &fixtures(), &[("SHORT", "12345")]).expect_err(name);
        let problem = problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{name}: no problem at {key}: {problems:?}"));
        assert!(problem.message.contains(needle), "{name}: {problem}");
        for p in &problems {
            assert!(!p.message.contains(secret.trim()), "{name}: secret leaked");
            assert!(!p.message.contains("tooshort"), "{name}: secret leaked");
        }
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let s = AuthSettings {
        leeway_seconds: 1000,
        ..settings(vec![
            KeySettings {
                algorithm: Some("HS256".into()),
                secret_file: Some("hmac-empty.secret".into()),
                ..KeySettings::default()
            },
            KeySettings {
                algorithm: Some("XX".into()),
                secret_file: Some("hmac.secret".into()),
                ..KeySettings::default()
            },
            KeySettings {
                algorithm: Some("RS256".into()),
                public_key_file: Some("missing.pem".into()),
                ..KeySettings::default()
            },
        ])
    };
    let problems = with_env(&s, &fixtures(), &[]).expect_err("refused");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "auth.keys[0].secret_file",
            "auth.keys[1].algorithm",
            "auth.keys[2].public_key_file",
            "auth.leeway_seconds",
        ]
    );
}

#[test]
fn secret_from_env_verifies() {
    let secret = String::from_utf8(fixture("hmac.secret")).unwrap_or_default();
    let entry = KeySettings {
        kid: Some("hs".into()),
        algorithm: Some("HS256".into()),
        secret_env: Some("EDGE_SECRET".into()),
        ..KeySettings::default()
    };
    let v = with_env(
        &settings(vec![entry]),
        &fixtures(),
        &[("EDGE_SECRET", secret.trim())],
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    assert!(
        v.verify(
            &signed(Algorithm::HS256, Some("hs"), &claims(json!({}))),
            NOW
        )
        .is_ok()
    );
}
