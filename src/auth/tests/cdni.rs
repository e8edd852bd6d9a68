//! RFC 9246 claims through `Verifier::authorize` and `Verifier::renewal`, as the gate calls
//! them: cached tokens are checked against each request, the replay cache is not bypassed
//! by the verified-token cache, renewed tokens verify and open the next request.

use std::net::IpAddr;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::keys::*;
use crate::auth::reject::Reject;
use crate::auth::settings::{AuthSettings, RenewalKeySettings, TokenSource, with_env};
use crate::auth::verifier::{RequestFacts, Verifier};

fn hs(changes: Value) -> String {
    signed(Algorithm::HS256, Some("hs"), &claims(changes))
}

fn base() -> AuthSettings {
    settings(vec![
        key_entry(Some("hs"), Algorithm::HS256),
        key_entry(Some("rs"), Algorithm::RS256),
    ])
}

fn hs_renewal() -> RenewalKeySettings {
    RenewalKeySettings {
        kid: Some("hs".into()),
        algorithm: Some("HS256".into()),
        secret_file: Some(PathBuf::from("hmac.secret")),
        ..RenewalKeySettings::default()
    }
}

fn facts<'a>(path: &'a str, client: &str, host: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        path,
        client: Some(client.parse::<IpAddr>().expect("test address")),
        host,
        query: "",
    }
}

fn hash_of(uri: &str) -> String {
    use aws_lc_rs::digest;
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, uri.as_bytes()).as_ref())
}

fn payload(token: &str) -> serde_json::Map<String, Value> {
    let part = token.split('.').nth(1).expect("payload part");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("json object")
}

#[test]
fn uri_and_address_are_checked_on_every_request_cached_or_not() {
    let v = load(&base());
    let uc = hs(json!({
        "cdniuc": "regex:http://cdn\\.example/courses/101/.*",
        "cdniip": "192.0.2.0/24",
    }));
    let hashed = hs(json!({
        "cdniuc": format!("hash:{}", hash_of("http://cdn.example/courses/101/v.mp4")),
    }));
    let cases: Vec<(&str, &String, RequestFacts<'_>, Result<(), Reject>)> = vec![
        (
            "match",
            &uc,
            facts("/courses/101/v.mp4", "192.0.2.9", Some("cdn.example")),
            Ok(()),
        ),
        (
            "host with default port and capitals",
            &uc,
            facts("/courses/101/v.mp4", "192.0.2.9", Some("CDN.example:80")),
            Ok(()),
        ),
        (
            "prefix trick",
            &uc,
            facts("/courses/1011/v.mp4", "192.0.2.9", Some("cdn.example")),
            Err(Reject::UriMismatch),
        ),
        (
            "other host",
            &uc,
            facts("/courses/101/v.mp4", "192.0.2.9", Some("evil.example")),
            Err(Reject::UriMismatch),
        ),
        (
            "no host",
            &uc,
            facts("/courses/101/v.mp4", "192.0.2.9", None),
            Err(Reject::UriMismatch),
        ),
        (
            "other client",
            &uc,
            facts("/courses/101/v.mp4", "198.51.100.1", Some("cdn.example")),
            Err(Reject::AddressMismatch),
        ),
        (
            "hash match",
            &hashed,
            facts("/courses/101/v.mp4", "198.51.100.1", Some("cdn.example")),
            Ok(()),
        ),
        (
            "hash other path",
            &hashed,
            facts("/courses/101/w.mp4", "198.51.100.1", Some("cdn.example")),
            Err(Reject::UriMismatch),
        ),
    ];
    for round in 0..2 {
        for (name, token, facts, want) in &cases {
            let got = v.authorize(token, facts, NOW).map(|_| ());
            assert_eq!(&got, want, "{name} (round {round})");
        }
    }
    // The query taking part is the canonical one given by the gate.
    let with_query = hs(json!({"cdniuc": "regex:http://cdn\\.example/a\\?v=2"}));
    let mut f = facts("/a", "192.0.2.1", Some("cdn.example"));
    assert_eq!(
        v.authorize(&with_query, &f, NOW).map(|_| ()),
        Err(Reject::UriMismatch)
    );
    f.query = "v=2";
    assert!(v.authorize(&with_query, &f, NOW).is_ok());
    // https when a TLS terminator fronts the node.
    let tls = load(&AuthSettings {
        uri_scheme: "https".into(),
        ..base()
    });
    let https = hs(json!({"cdniuc": "regex:https://cdn\\.example/.*"}));
    assert!(
        tls.authorize(
            &https,
            &facts("/a", "192.0.2.1", Some("cdn.example:443")),
            NOW
        )
        .is_ok()
    );
    assert_eq!(
        v.authorize(&https, &facts("/a", "192.0.2.1", Some("cdn.example")), NOW)
            .map(|_| ()),
        Err(Reject::UriMismatch)
    );
}

#[test]
fn version_critical_and_container_refusals() {
    let v = load(&AuthSettings {
        scope_claim: Some("paths".into()),
        allow_unscoped_tokens: true,
        ..base()
    });
    let f = facts("/a", "192.0.2.1", Some("cdn.example"));
    let cases = [
        (json!({"cdniv": 1}), Ok(())),
        (json!({"cdniv": 2}), Err(Reject::UnsupportedVersion)),
        (json!({"cdnicrit": ["exp", "cdniip", "paths"]}), Ok(())),
        (json!({"cdnicrit": ["geo"]}), Err(Reject::UnknownCritical)),
        // No renewal key: renewal claims cannot be critical, but are accepted otherwise.
        (
            json!({"cdnicrit": ["cdniets"]}),
            Err(Reject::UnknownCritical),
        ),
        (json!({"cdniets": 30, "cdnistt": 1}), Ok(())),
        (
            json!({"cdniuc": "uri:http://cdn.example/a"}),
            Err(Reject::UnsupportedUriContainer),
        ),
        (json!({"cdniuc": "regex:("}), Err(Reject::Malformed)),
        (json!({"cdniip": "nowhere"}), Err(Reject::Malformed)),
    ];
    for (changes, want) in cases {
        let got = v.authorize(&hs(changes.clone()), &f, NOW).map(|_| ());
        assert_eq!(got, want, "{changes}");
    }
}

#[test]
fn replayed_jti_is_refused_even_from_the_verified_cache() {
    let v = load(&AuthSettings {
        replay_protection: true,
        replay_cache_entries: 1000,
        ..base()
    });
    let f = facts("/a", "192.0.2.1", Some("cdn.example"));
    let token = hs(json!({"jti": "once"}));
    assert!(v.authorize(&token, &f, NOW).is_ok());
    assert_eq!(
        v.authorize(&token, &f, NOW + 1).map(|_| ()),
        Err(Reject::Replayed)
    );
    // Another signature over the same claims (another key) is the same token.
    let same_claims = signed(
        Algorithm::RS256,
        Some("rs"),
        &claims(json!({"jti": "once"})),
    );
    assert_eq!(
        v.authorize(&same_claims, &f, NOW + 1).map(|_| ()),
        Err(Reject::Replayed)
    );
    // A refused request does not use the token up.
    let scoped = hs(json!({"jti": "two", "cdniuc": "regex:http://cdn\\.example/b"}));
    assert_eq!(
        v.authorize(&scoped, &f, NOW).map(|_| ()),
        Err(Reject::UriMismatch)
    );
    assert!(
        v.authorize(&scoped, &facts("/b", "192.0.2.1", Some("cdn.example")), NOW)
            .is_ok()
    );
    // With replay protection a token must carry a jti.
    assert_eq!(
        v.authorize(&hs(json!({"jti": null})), &f, NOW).map(|_| ()),
        Err(Reject::MissingClaim("jti"))
    );
    // Without it, the same token opens any number of requests.
    let open = load(&base());
    for _ in 0..3 {
        assert!(open.authorize(&token, &f, NOW).is_ok());
    }
    assert_eq!(Reject::Replayed.reason(), "replayed");
    assert!(!Reject::Replayed.is_forbidden());
}

#[test]
fn renewed_tokens_verify_expire_later_and_open_the_next_request() {
    let v = load(&AuthSettings {
        renewal_key: Some(hs_renewal()),
        token_sources: vec![
            TokenSource::Query("jwt".into()),
            TokenSource::Cookie("edge".into()),
        ],
        ..base()
    });
    let f = facts(
        "/courses/101/hls/seg-1.ts",
        "192.0.2.1",
        Some("cdn.example"),
    );
    let cookie = hs(json!({"cdniets": 120, "cdnistt": 1, "cdnistd": 2, "plan": "pro"}));
    let grant = v.authorize(&cookie, &f, NOW).expect("opens");
    let later = NOW + 300;
    let renewed = v.renewal(&grant, &f, later).expect("renewed");
    assert_eq!(renewed.name, http::header::SET_COOKIE);
    let (token, attributes) = renewed
        .value
        .strip_prefix("edge=")
        .and_then(|rest| rest.split_once("; "))
        .expect("edge=TOKEN; ...");
    assert_eq!(attributes, "Path=/courses/101/; Max-Age=120; HttpOnly");
    let claims = payload(token);
    assert_eq!(claims["exp"], json!(later + 120));
    assert_eq!(claims["iat"], json!(later));
    assert_eq!(claims["plan"], json!("pro"));
    assert_eq!(
        claims["jti"],
        json!("j1"),
        "jti kept without replay protection"
    );
    let next = facts(
        "/courses/101/hls/seg-2.ts",
        "192.0.2.1",
        Some("cdn.example"),
    );
    let grant = v
        .authorize(token, &next, later + 1)
        .expect("renewed token opens");
    assert_eq!(grant.claims.exp, Some(later + 120));
    // The original has expired by then (exp NOW + 600), the renewed one has not.
    assert_eq!(
        v.authorize(&cookie, &next, NOW + 700).map(|_| ()),
        Err(Reject::Expired)
    );
    assert!(v.authorize(token, &next, NOW + 405).is_ok());

    // cdnistt 2: the bare token in the configured header.
    let header = hs(json!({"cdniets": 60, "cdnistt": 2}));
    let grant = v.authorize(&header, &f, NOW).expect("opens");
    let renewed = v.renewal(&grant, &f, NOW).expect("renewed");
    assert_eq!(renewed.name.as_str(), "x-cdni-token");
    assert_eq!(payload(&renewed.value)["exp"], json!(NOW + 60));
    assert!(v.authorize(&renewed.value, &next, NOW).is_ok());

    // No renewal asked for, or no key: nothing.
    let plain = v.authorize(&hs(json!({})), &f, NOW).expect("opens");
    assert_eq!(v.renewal(&plain, &f, NOW), None);
    let keyless = load(&base());
    let grant = keyless.authorize(&cookie, &f, NOW).expect("accepted");
    assert_eq!(keyless.renewal(&grant, &f, NOW), None);
}

#[test]
fn renewal_with_replay_protection_gives_a_fresh_jti() {
    let v = load(&AuthSettings {
        renewal_key: Some(RenewalKeySettings {
            kid: Some("rs".into()),
            algorithm: Some("RS256".into()),
            private_key_file: Some(PathBuf::from("rsa2048.pem")),
            ..RenewalKeySettings::default()
        }),
        replay_protection: true,
        ..base()
    });
    let f = facts("/a/b.ts", "192.0.2.1", Some("cdn.example"));
    let mut token = hs(json!({"cdniets": 30, "cdnistt": 2, "jti": "first"}));
    let mut seen = std::collections::HashSet::new();
    for step in 0..5 {
        let grant = v
            .authorize(&token, &f, NOW)
            .expect("each renewed token opens once");
        assert!(
            seen.insert(grant.claims.jti.clone().expect("jti")),
            "step {step}"
        );
        assert_eq!(
            v.authorize(&token, &f, NOW).map(|_| ()),
            Err(Reject::Replayed),
            "step {step}"
        );
        token = v.renewal(&grant, &f, NOW).expect("renewed").value;
    }
}

#[test]
fn renewal_key_problems() {
    let cases: Vec<(RenewalKeySettings, &str)> = vec![
        (
            RenewalKeySettings {
                kid: None,
                ..hs_renewal()
            },
            "auth.renewal_key.kid",
        ),
        (
            RenewalKeySettings {
                algorithm: Some("none".into()),
                ..hs_renewal()
            },
            "auth.renewal_key.algorithm",
        ),
        (
            RenewalKeySettings {
                secret_env: Some("X".into()),
                ..hs_renewal()
            },
            "auth.renewal_key",
        ),
        (
            RenewalKeySettings {
                kid: Some("nobody".into()),
                ..hs_renewal()
            },
            "auth.renewal_key.kid",
        ),
        (
            // Signs with RS256 for a kid that verifies HS256.
            RenewalKeySettings {
                kid: Some("hs".into()),
                algorithm: Some("RS256".into()),
                secret_file: None,
                private_key_file: Some(PathBuf::from("rsa2048.pem")),
                ..RenewalKeySettings::default()
            },
            "auth.renewal_key",
        ),
        (
            // Another secret than the one that verifies.
            RenewalKeySettings {
                secret_file: None,
                secret_env: Some("OTHER_SECRET".into()),
                ..hs_renewal()
            },
            "auth.renewal_key",
        ),
        (
            RenewalKeySettings {
                secret_file: Some(PathBuf::from("rsa2048.pem")),
                algorithm: Some("RS256".into()),
                kid: Some("rs".into()),
                ..RenewalKeySettings::default()
            },
            "auth.renewal_key.secret_file",
        ),
        (
            RenewalKeySettings {
                secret_file: Some(PathBuf::from("missing.secret")),
                ..hs_renewal()
            },
            "auth.renewal_key.secret_file",
        ),
    ];
    for (renewal, key) in cases {
        let settings = AuthSettings {
            renewal_key: Some(renewal.clone()),
            ..base()
        };
        let problems = with_env(
            &settings,
            &fixtures(),
            &[("OTHER_SECRET", "another-secret-that-is-long-enough-000")],
        )
        .expect_err("refused");
        assert!(
            problems.iter().any(|p| p.key == key),
            "{renewal:?}: {problems:?}"
        );
    }
    let other: Vec<(AuthSettings, &str)> = vec![
        (
            AuthSettings {
                uri_scheme: "ftp".into(),
                ..base()
            },
            "auth.uri_scheme",
        ),
        (
            AuthSettings {
                renewal_header: "bad header".into(),
                ..base()
            },
            "auth.renewal_header",
        ),
        (
            AuthSettings {
                renewal_header: "Set-Cookie".into(),
                ..base()
            },
            "auth.renewal_header",
        ),
        (
            AuthSettings {
                replay_cache_entries: 0,
                ..base()
            },
            "auth.replay_cache_entries",
        ),
    ];
    for (settings, key) in other {
        let problems = Verifier::from_settings(&settings, &fixtures()).expect_err(key);
        assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}");
    }
}
