//! The token policy on top of signature checks: lifetime, path scope, revocation and the
//! verified-token cache, through `Verifier::authorize` as the gate calls it.

use std::net::IpAddr;

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::keys::*;
use crate::auth::denylist::DenyKind;
use crate::auth::reject::Reject;
use crate::auth::settings::AuthSettings;
use crate::auth::verifier::{RequestFacts, Verifier};

fn hs(changes: serde_json::Value) -> String {
    signed(Algorithm::HS256, Some("hs"), &claims(changes))
}

fn base() -> AuthSettings {
    settings(vec![
        key_entry(Some("hs"), Algorithm::HS256),
        key_entry(Some("rs"), Algorithm::RS256),
    ])
}

fn on(path: &str) -> RequestFacts<'_> {
    RequestFacts {
        path,
        client: Some(IpAddr::from([192, 0, 2, 1])),
        host: Some("cdn.example"),
        query: "",
    }
}

fn scoped(allow_unscoped: bool) -> Verifier {
    load(&AuthSettings {
        scope_claim: Some("paths".into()),
        allow_unscoped_tokens: allow_unscoped,
        ..base()
    })
}

#[test]
fn lifetime_is_bounded() {
    let v = load(&AuthSettings {
        max_lifetime_seconds: 3600,
        ..base()
    });
    let cases = [
        (json!({"exp": NOW + 3600}), Ok(())),
        (json!({"exp": NOW + 3601}), Err(Reject::Lifetime)),
        (json!({"iat": null, "exp": NOW + 3600 + 5}), Ok(())),
        (
            json!({"iat": null, "exp": NOW + 3600 + 6}),
            Err(Reject::Lifetime),
        ),
        (json!({"exp": u64::MAX}), Err(Reject::Lifetime)),
        (json!({"exp": 9e18}), Err(Reject::Lifetime)),
        (
            json!({"iat": NOW - 3000, "exp": NOW + 601}),
            Err(Reject::Lifetime),
        ),
        (json!({"iat": NOW - 3000, "exp": NOW + 600}), Ok(())),
        (json!({"iat": null, "exp": NOW + 60}), Ok(())),
        (json!({"iat": NOW + 600}), Err(Reject::NotYetValid)),
    ];
    for (changes, want) in cases {
        let got = v
            .authorize(&hs(changes.clone()), &on("/a"), NOW)
            .map(|_| ());
        assert_eq!(got, want, "{changes}");
    }
}

#[test]
fn scope_limits_the_paths_a_token_opens() {
    let v = scoped(false);
    let token = hs(json!({"paths": ["/courses/101/*"]}));
    let cases = [
        ("/courses/101/v.mp4", Ok(())),
        ("/courses/101/hls/seg-00001.ts", Ok(())),
        ("/courses/202/v.mp4", Err(Reject::OutOfScope)),
        ("/courses/1011/v.mp4", Err(Reject::OutOfScope)),
        ("/courses/101", Err(Reject::OutOfScope)),
    ];
    for _round in 0..2 {
        // The second round is served from the verified-token cache: same answers.
        for (path, want) in &cases {
            let got = v.authorize(&token, &on(path), NOW).map(|_| ());
            assert_eq!(&got, want, "{path}");
        }
    }
    assert!(Reject::OutOfScope.is_forbidden());
}

#[test]
fn a_token_without_scope_opens_everything_only_when_configured() {
    let unscoped = hs(json!({}));
    assert_eq!(
        scoped(false)
            .authorize(&unscoped, &on("/courses/1/v.mp4"), NOW)
            .map(|_| ()),
        Err(Reject::Unscoped)
    );
    assert!(
        scoped(true)
            .authorize(&unscoped, &on("/courses/1/v.mp4"), NOW)
            .is_ok()
    );
    assert!(
        load(&base())
            .authorize(&hs(json!({"paths": ["/x/*"]})), &on("/y"), NOW)
            .is_ok(),
        "without scope_claim the claim means nothing"
    );
    for bad in [json!(7), json!(["relative/*"]), json!({"a": 1})] {
        assert_eq!(
            scoped(true)
                .authorize(&hs(json!({"paths": bad})), &on("/a"), NOW)
                .map(|_| ()),
            Err(Reject::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn revocation_is_effective_on_the_next_request_even_when_cached() {
    let v = load(&base());
    let token = hs(json!({"jti": "lesson-1", "sub": "alice"}));
    assert!(v.authorize(&token, &on("/a"), NOW).is_ok());
    assert!(v.set_denied(DenyKind::Jti, "lesson-1", true));
    assert_eq!(
        v.authorize(&token, &on("/a"), NOW).map(|_| ()),
        Err(Reject::Revoked)
    );
    assert!(v.set_denied(DenyKind::Jti, "lesson-1", false));
    assert!(v.authorize(&token, &on("/a"), NOW).is_ok());
    v.set_denied(DenyKind::Sub, "alice", true);
    assert_eq!(
        v.authorize(&token, &on("/a"), NOW).map(|_| ()),
        Err(Reject::Revoked)
    );
    assert!(
        v.authorize(&hs(json!({"sub": "bob"})), &on("/a"), NOW)
            .is_ok()
    );
    assert_eq!(v.denylist_listing(), "sub alice\n");
}

#[test]
fn denylist_file_is_read_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.txt");
    std::fs::write(&path, "jti j1\n").expect("write");
    let v = load(&AuthSettings {
        denylist_file: Some(path.clone()),
        ..base()
    });
    let token = hs(json!({"jti": "j1"}));
    assert_eq!(
        v.authorize(&token, &on("/a"), NOW).map(|_| ()),
        Err(Reject::Revoked)
    );
    std::fs::write(&path, "# nothing revoked\n").expect("write");
    v.reload_denylist();
    assert!(v.authorize(&token, &on("/a"), NOW).is_ok());
}

#[test]
fn cached_tokens_still_expire() {
    let v = load(&base());
    let token = hs(json!({"exp": NOW + 10}));
    assert!(v.authorize(&token, &on("/a"), NOW).is_ok());
    assert!(v.authorize(&token, &on("/a"), NOW + 15).is_ok(), "leeway 5");
    assert_eq!(
        v.authorize(&token, &on("/a"), NOW + 16).map(|_| ()),
        Err(Reject::Expired)
    );
    let early = hs(json!({"nbf": NOW + 100}));
    assert_eq!(
        v.authorize(&early, &on("/a"), NOW).map(|_| ()),
        Err(Reject::NotYetValid)
    );
    assert!(v.authorize(&early, &on("/a"), NOW + 100).is_ok());
}

#[test]
fn the_cache_never_accepts_a_different_token() {
    let v = load(&base());
    let good = hs(json!({}));
    assert!(v.authorize(&good, &on("/a"), NOW).is_ok());
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    assert_eq!(
        v.authorize(&tampered, &on("/a"), NOW).map(|_| ()),
        Err(Reject::BadSignature)
    );
    assert_eq!(
        v.authorize(&format!("{good}x"), &on("/a"), NOW).map(|_| ()),
        Err(Reject::BadSignature)
    );
}

#[test]
fn per_key_issuers() {
    let mut rs = key_entry(Some("rs"), Algorithm::RS256);
    rs.issuer = Some("https://other.example".into());
    let v = load(&settings(vec![key_entry(Some("hs"), Algorithm::HS256), rs]));
    let rs_token = |iss: &str| signed(Algorithm::RS256, Some("rs"), &claims(json!({"iss": iss})));
    assert!(v.verify(&rs_token("https://other.example"), NOW).is_ok());
    assert_eq!(
        v.verify(&rs_token(ISSUER), NOW),
        Err(Reject::WrongIssuer),
        "a key's issuer replaces auth.issuer"
    );
    assert_eq!(
        v.verify(&hs(json!({"iss": "https://other.example"})), NOW),
        Err(Reject::WrongIssuer),
        "one issuer's token is not accepted with another issuer's key"
    );
}
