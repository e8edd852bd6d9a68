//! End-to-end tests of `Verifier`: real tokens, signed with the fixture keys, against a
//! verifier loaded from settings the way start-up does.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::keys::*;
use crate::auth::reject::Reject;
use crate::auth::verifier::Verifier;
use crate::auth::{MintSpec, mint};

/// kid "hs" HS256, "rs" RS256, "es" ES256, "ed" EdDSA, plus a kid-less HS512 key.
fn full() -> Verifier {
    let keys = vec![
        key_entry(Some("hs"), Algorithm::HS256),
        key_entry(Some("rs"), Algorithm::RS256),
        key_entry(Some("es"), Algorithm::ES256),
        key_entry(Some("ed"), Algorithm::EdDSA),
        key_entry(None, Algorithm::HS512),
    ];
    load(&settings(keys))
}

#[test]
fn reject_table() {
    let v = full();
    let hs = |changes| signed(Algorithm::HS256, Some("hs"), &claims(changes));
    let other_secret = EncodingKey::from_secret(&[9u8; 48]);
    let rsa_public_pem = fixture("rsa2048.pub.pem");
    let good_payload = b64(&claims(json!({})));
    let mut tampered = hs(json!({}));
    tampered.replace_range(tampered.len() - 3.., "AAA");
    let huge = format!(
        "{}.{}.sig",
        b64(&header(Algorithm::HS256, Some("hs"))),
        "A".repeat(9000)
    );

    let cases: Vec<(&str, String, Reject)> = vec![
        ("too large", huge, Reject::TooLarge),
        ("not a jwt", "hello".into(), Reject::Malformed),
        (
            "four parts",
            format!("{}.x", hs(json!({}))),
            Reject::Malformed,
        ),
        (
            "payload not json",
            sign_raw(
                &header(Algorithm::HS256, Some("hs")),
                "not json",
                &signing_key(Algorithm::HS256),
                Algorithm::HS256,
            ),
            Reject::Malformed,
        ),
        (
            "payload an array",
            sign_raw(
                &header(Algorithm::HS256, Some("hs")),
                "[1,2]",
                &signing_key(Algorithm::HS256),
                Algorithm::HS256,
            ),
            Reject::Malformed,
        ),
        (
            "exp a string",
            hs(json!({"exp": "tomorrow"})),
            Reject::Malformed,
        ),
        (
            "exp missing",
            hs(json!({"exp": null})),
            Reject::MissingClaim("exp"),
        ),
        (
            "duplicate exp",
            sign_raw(
                &header(Algorithm::HS256, Some("hs")),
                &format!(
                    r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{},"exp":1}}"#,
                    NOW + 60
                ),
                &signing_key(Algorithm::HS256),
                Algorithm::HS256,
            ),
            Reject::Malformed,
        ),
        (
            "other secret",
            sign_raw(
                &header(Algorithm::HS256, Some("hs")),
                &claims(json!({})),
                &other_secret,
                Algorithm::HS256,
            ),
            Reject::BadSignature,
        ),
        ("tampered signature", tampered, Reject::BadSignature),
        (
            "empty signature",
            format!(
                "{}.{good_payload}.",
                b64(&header(Algorithm::HS256, Some("hs")))
            ),
            Reject::BadSignature,
        ),
        (
            "HS256 with RSA public PEM as secret, kid rs",
            sign_raw(
                &header(Algorithm::HS256, Some("rs")),
                &claims(json!({})),
                &EncodingKey::from_secret(&rsa_public_pem),
                Algorithm::HS256,
            ),
            Reject::WrongAlgorithm,
        ),
        (
            "HS256 with RSA public PEM as secret, no kid",
            sign_raw(
                &header(Algorithm::HS256, None),
                &claims(json!({})),
                &EncodingKey::from_secret(&rsa_public_pem),
                Algorithm::HS256,
            ),
            Reject::BadSignature,
        ),
        (
            "kid hs but HS512",
            signed(Algorithm::HS512, Some("hs"), &claims(json!({}))),
            Reject::WrongAlgorithm,
        ),
        (
            "no kid, no HS384 key",
            signed(Algorithm::HS384, None, &claims(json!({}))),
            Reject::WrongAlgorithm,
        ),
        (
            "no kid, no PS256 key",
            signed(Algorithm::PS256, None, &claims(json!({}))),
            Reject::WrongAlgorithm,
        ),
        ("expired", hs(json!({"exp": NOW - 6})), Reject::Expired),
        (
            "not yet valid",
            hs(json!({"nbf": NOW + 60})),
            Reject::NotYetValid,
        ),
        (
            "unknown kid",
            signed(Algorithm::HS256, Some("nope"), &claims(json!({}))),
            Reject::UnknownKey,
        ),
        (
            "kid path",
            signed(
                Algorithm::HS256,
                Some("../../etc/passwd"),
                &claims(json!({})),
            ),
            Reject::UnknownKey,
        ),
        (
            "kid sql",
            signed(Algorithm::HS256, Some("' OR 1=1 --"), &claims(json!({}))),
            Reject::UnknownKey,
        ),
        (
            "kid url",
            signed(
                Algorithm::HS256,
                Some("https://evil.example/key"),
                &claims(json!({})),
            ),
            Reject::UnknownKey,
        ),
        (
            "kid empty",
            signed(Algorithm::HS256, Some(""), &claims(json!({}))),
            Reject::UnknownKey,
        ),
        (
            "wrong issuer",
            hs(json!({"iss": "https://evil.example"})),
            Reject::WrongIssuer,
        ),
        ("issuer a number", hs(json!({"iss": 1})), Reject::Malformed),
        (
            "issuer an object",
            hs(json!({"iss": {"url": ISSUER}})),
            Reject::Malformed,
        ),
        (
            "issuer missing",
            hs(json!({"iss": null})),
            Reject::WrongIssuer,
        ),
        (
            "wrong audience",
            hs(json!({"aud": "other"})),
            Reject::WrongAudience,
        ),
        (
            "audience a number",
            hs(json!({"aud": 7})),
            Reject::Malformed,
        ),
        (
            "audience an object",
            hs(json!({"aud": {"cdn-node": 1}})),
            Reject::Malformed,
        ),
        (
            "audience missing",
            hs(json!({"aud": null})),
            Reject::WrongAudience,
        ),
        (
            "crit",
            sign_raw(
                r#"{"alg":"HS256","kid":"hs","crit":["exp"],"exp":1}"#,
                &claims(json!({})),
                &signing_key(Algorithm::HS256),
                Algorithm::HS256,
            ),
            Reject::Crit,
        ),
        (
            "crit empty",
            sign_raw(
                r#"{"alg":"HS256","kid":"hs","crit":[]}"#,
                &claims(json!({})),
                &signing_key(Algorithm::HS256),
                Algorithm::HS256,
            ),
            Reject::Crit,
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(v.verify(&token, NOW), Err(want), "{name}");
    }
}

#[test]
fn alg_none_in_any_casing_is_refused() {
    let v = full();
    let payload = b64(&claims(json!({})));
    let hs_sig = signed(Algorithm::HS256, Some("hs"), &claims(json!({})));
    let hs_sig = hs_sig.rsplit('.').next().unwrap_or_default().to_owned();
    for alg in ["none", "None", "NONE", "nOnE", "noNe"] {
        for kid in [None, Some("hs")] {
            let mut h = json!({"alg": alg});
            if let Some(kid) = kid {
                h["kid"] = json!(kid);
            }
            for sig in ["", hs_sig.as_str()] {
                let token = format!("{}.{payload}.{sig}", b64(&h.to_string()));
                let got = v.verify(&token, NOW);
                assert!(
                    matches!(got, Err(Reject::WrongAlgorithm | Reject::Malformed)),
                    "{alg} {kid:?} sig={}: {got:?}",
                    !sig.is_empty()
                );
            }
        }
    }
}

#[test]
fn remote_key_headers_are_ignored() {
    let v = full();
    let attacker = EncodingKey::from_secret(&[1u8; 64]);
    let attacker_jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, Algorithm::HS256)
        .unwrap_or_else(|e| panic!("jwk: {e}"));
    let with_refs = |key: &EncodingKey| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("hs".into());
        h.jku = Some("https://evil.example/jwks.json".into());
        h.x5u = Some("https://evil.example/cert.pem".into());
        h.jwk = Some(attacker_jwk.clone());
        let all: serde_json::Value =
            serde_json::from_str(&claims(json!({}))).unwrap_or_else(|e| panic!("claims: {e}"));
        jsonwebtoken::encode(&h, &all, key).unwrap_or_else(|e| panic!("encode: {e}"))
    };
    // Signed by the configured key: the references change nothing.
    assert!(
        v.verify(&with_refs(&signing_key(Algorithm::HS256)), NOW)
            .is_ok()
    );
    // Signed by the key the header points to: never trusted.
    assert_eq!(
        v.verify(&with_refs(&attacker), NOW),
        Err(Reject::BadSignature)
    );
}

#[test]
fn exp_u64_max_is_refused_as_too_long_lived_without_overflow() {
    let v = full();
    let token = signed(
        Algorithm::HS256,
        Some("hs"),
        &claims(json!({"exp": u64::MAX})),
    );
    assert_eq!(v.verify(&token, NOW), Err(Reject::Lifetime));
    let no_iat = signed(
        Algorithm::HS256,
        Some("hs"),
        &claims(json!({"exp": u64::MAX, "iat": null})),
    );
    assert_eq!(v.verify(&no_iat, NOW), Err(Reject::Lifetime));
    assert!(
        v.verify(&no_iat, u64::MAX).is_ok(),
        "now + lifetime saturates"
    );
    let nbf = signed(
        Algorithm::HS256,
        Some("hs"),
        &claims(json!({"nbf": u64::MAX, "exp": u64::MAX, "iat": null})),
    );
    assert_eq!(v.verify(&nbf, NOW), Err(Reject::NotYetValid));
    assert!(
        v.verify(&nbf, u64::MAX - 1).is_ok(),
        "now + leeway saturates"
    );
}

#[test]
fn every_key_of_the_verifier_verifies_its_tokens() {
    let v = full();
    let cases = [
        (Algorithm::HS256, Some("hs")),
        (Algorithm::RS256, Some("rs")),
        (Algorithm::ES256, Some("es")),
        (Algorithm::EdDSA, Some("ed")),
        (Algorithm::HS512, None),
    ];
    for (alg, kid) in cases {
        let claims = v
            .verify(&signed(alg, kid, &claims(json!({}))), NOW)
            .unwrap_or_else(|r| panic!("{alg:?}: {r:?}"));
        assert_eq!(claims.sub.as_deref(), Some("u1"), "{alg:?}");
        assert_eq!(claims.jti.as_deref(), Some("j1"), "{alg:?}");
    }
    // A kid-less token tries keys of its algorithm, including ones that carry a kid.
    assert!(
        v.verify(&signed(Algorithm::RS256, None, &claims(json!({}))), NOW)
            .is_ok()
    );
}

#[test]
fn max_token_bytes_is_the_boundary() {
    let token = signed(Algorithm::HS256, Some("hs"), &claims(json!({})));
    let mut s = settings(vec![key_entry(Some("hs"), Algorithm::HS256)]);
    s.max_token_bytes = token.len();
    assert!(load(&s).verify(&token, NOW).is_ok());
    s.max_token_bytes = token.len() - 1;
    assert_eq!(load(&s).verify(&token, NOW), Err(Reject::TooLarge));
}

#[test]
fn mint_then_verify_every_algorithm() {
    for alg in ALL_ALGORITHMS {
        let (private, _) = key_files(alg);
        let v = load(&settings(vec![key_entry(Some("k"), alg)]));
        let spec = MintSpec {
            key_file: fixtures().join(private),
            algorithm: format!("{alg:?}"),
            kid: Some("k".into()),
            subject: Some("student-7".into()),
            ttl_seconds: 300,
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            extra_claims: vec!["plan=pro".into(), "level=3".into()],
            now_unix: NOW,
        };
        let token = mint(&spec).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let claims = v
            .verify(&token, NOW + 10)
            .unwrap_or_else(|r| panic!("{alg:?}: {r:?}"));
        assert_eq!(claims.sub.as_deref(), Some("student-7"), "{alg:?}");
        assert_eq!(claims.exp, Some(NOW + 300), "{alg:?}");
        assert_eq!(claims.iat, Some(NOW), "{alg:?}");
        assert_eq!(claims.all.get("plan"), Some(&json!("pro")), "{alg:?}");
        assert_eq!(claims.all.get("level"), Some(&json!(3)), "{alg:?}");
        assert_eq!(v.verify(&token, NOW + 306), Err(Reject::Expired), "{alg:?}");
    }
}

#[test]
fn mint_errors_name_the_input() {
    let base = MintSpec {
        key_file: fixtures().join("hmac.secret"),
        algorithm: "HS256".into(),
        ttl_seconds: 60,
        now_unix: NOW,
        ..MintSpec::default()
    };
    let cases: Vec<(&str, MintSpec, &str)> = vec![
        (
            "bad algorithm",
            MintSpec {
                algorithm: "none".into(),
                ..base.clone()
            },
            "\"none\"",
        ),
        (
            "missing file",
            MintSpec {
                key_file: fixtures().join("nope.pem"),
                algorithm: "RS256".into(),
                ..base.clone()
            },
            "nope.pem",
        ),
        (
            "short secret",
            MintSpec {
                key_file: fixtures().join("hmac-short.secret"),
                ..base.clone()
            },
            "only 8 bytes",
        ),
        (
            "public key given",
            MintSpec {
                key_file: fixtures().join("ec-p256.pub.pem"),
                algorithm: "ES256".into(),
                ..base.clone()
            },
            "private",
        ),
        (
            "ttl overflow",
            MintSpec {
                ttl_seconds: u64::MAX,
                ..base.clone()
            },
            "overflows",
        ),
        (
            "bad extra",
            MintSpec {
                extra_claims: vec!["novalue".into()],
                ..base.clone()
            },
            "novalue",
        ),
    ];
    for (name, spec, needle) in cases {
        let err = mint(&spec).expect_err(name);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("tooshort"), "{name}: secret leaked: {err}");
    }
}

#[test]
fn public_paths() {
    let mut s = settings(vec![key_entry(None, Algorithm::HS256)]);
    s.public_prefixes = vec!["/public/".into()];
    let v = load(&s);
    assert!(v.is_public("/public/a.m3u8"));
    assert!(!v.is_public("/private/a.m3u8"));
    assert!(!v.is_public("/publicity"));
}

#[test]
fn hs256_signed_with_the_rsa_public_pem_is_refused_by_an_rs256_key() {
    let pem = fixture("rsa2048.pub.pem");
    for kid in [None, Some("rs")] {
        let v = load(&settings(vec![key_entry(kid, Algorithm::RS256)]));
        let forged = sign_raw(
            &header(Algorithm::HS256, kid),
            &claims(json!({})),
            &EncodingKey::from_secret(&pem),
            Algorithm::HS256,
        );
        assert_eq!(
            v.verify(&forged, NOW),
            Err(Reject::WrongAlgorithm),
            "{kid:?}"
        );
    }
}

#[test]
fn debug_shows_no_key_material() {
    let text = format!("{:?}", full());
    let secret = fixture("hmac.secret");
    let secret = std::str::from_utf8(secret.trim_ascii()).unwrap_or("unreadable");
    assert!(text.contains("HS256"), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains("SecretOrDer"), "{text}");
}
