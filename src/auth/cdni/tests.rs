//! Reading the claims: the version first, then `cdnicrit`, then `cdniip` against the
//! client's address. `cdniuc` and the renewal claims are tested beside their code.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

pub(super) const POLICY: CdniPolicy<'static> = CdniPolicy {
    scope_claim: Some("paths"),
    renews: true,
    checks_issuer: true,
    checks_audience: true,
    max_lifetime: 86_400,
};

pub(super) fn read(claims: Value) -> Result<Cdni, Reject> {
    read_with(claims, &POLICY)
}

fn read_with(claims: Value, policy: &CdniPolicy<'_>) -> Result<Cdni, Reject> {
    match claims {
        Value::Object(map) => Cdni::read(&map, policy),
        _ => panic!("claims are an object"),
    }
}

pub(super) fn hash_of(uri: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, uri.as_bytes()).as_ref())
}

#[test]
fn version_table() {
    let cases = [
        (json!({}), Ok(())),
        (json!({"cdniv": 1}), Ok(())),
        (json!({"cdniv": 2}), Err(Reject::UnsupportedVersion)),
        (json!({"cdniv": 0}), Err(Reject::UnsupportedVersion)),
        (json!({"cdniv": -1}), Err(Reject::UnsupportedVersion)),
        (json!({"cdniv": 1.5}), Err(Reject::UnsupportedVersion)),
        (json!({"cdniv": "1"}), Err(Reject::UnsupportedVersion)),
        (json!({"cdniv": null}), Err(Reject::UnsupportedVersion)),
    ];
    for (claims, want) in cases {
        assert_eq!(read(claims.clone()).map(|_| ()), want, "{claims}");
    }
    assert_eq!(Reject::UnsupportedVersion.reason(), "malformed");
}

#[test]
fn critical_table() {
    let no_renewal = CdniPolicy {
        scope_claim: None,
        renews: false,
        checks_issuer: false,
        checks_audience: false,
        ..POLICY
    };
    let cases: Vec<(Value, &CdniPolicy<'_>, Result<(), Reject>)> = vec![
        (json!({"cdnicrit": ["exp", "cdniuc"]}), &POLICY, Ok(())),
        (
            json!({"cdnicrit": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "cdniv",
                                "cdnicrit", "cdniip", "cdniuc"]}),
            &POLICY,
            Ok(()),
        ),
        (
            json!({"cdnicrit": ["sub", "exp", "nbf", "iat", "jti", "cdniv", "cdnicrit",
                                "cdniip", "cdniuc"]}),
            &no_renewal,
            Ok(()),
        ),
        // Without a configured issuer or audience the node does not check them.
        (
            json!({"cdnicrit": ["aud"]}),
            &no_renewal,
            Err(Reject::UnknownCritical),
        ),
        (
            json!({"cdnicrit": ["iss"]}),
            &no_renewal,
            Err(Reject::UnknownCritical),
        ),
        (json!({"cdnicrit": ["paths"]}), &POLICY, Ok(())),
        (
            json!({"cdnicrit": ["paths"]}),
            &no_renewal,
            Err(Reject::UnknownCritical),
        ),
        (
            json!({"cdnicrit": ["cdniets", "cdnistt", "cdnistd"]}),
            &POLICY,
            Ok(()),
        ),
        (
            json!({"cdnicrit": ["cdniets"]}),
            &no_renewal,
            Err(Reject::UnknownCritical),
        ),
        (
            json!({"cdnicrit": ["exp", "geo"]}),
            &POLICY,
            Err(Reject::UnknownCritical),
        ),
        (
            json!({"cdnicrit": ["EXP"]}),
            &POLICY,
            Err(Reject::UnknownCritical),
        ),
        (json!({"cdnicrit": []}), &POLICY, Err(Reject::Malformed)),
        (json!({"cdnicrit": "exp"}), &POLICY, Err(Reject::Malformed)),
        (json!({"cdnicrit": [7]}), &POLICY, Err(Reject::Malformed)),
        // The version is read first.
        (
            json!({"cdniv": 2, "cdnicrit": ["geo"]}),
            &POLICY,
            Err(Reject::UnsupportedVersion),
        ),
        // An unknown critical claim wins over a badly shaped other claim.
        (
            json!({"cdnicrit": ["geo"], "cdniip": 7}),
            &POLICY,
            Err(Reject::UnknownCritical),
        ),
    ];
    for (claims, policy, want) in cases {
        assert_eq!(
            read_with(claims.clone(), policy).map(|_| ()),
            want,
            "{claims}"
        );
    }
    assert_eq!(Reject::UnknownCritical.reason(), "unknown_critical");
    assert!(!Reject::UnknownCritical.is_forbidden());
}

#[test]
fn address_table() {
    let ip = |s: &str| Some(s.parse::<IpAddr>().expect("test address"));
    let cases: Vec<(Value, Option<IpAddr>, Result<(), Reject>)> = vec![
        (json!({}), None, Ok(())),
        (json!({"cdniip": "127.0.0.1"}), ip("127.0.0.1"), Ok(())),
        (
            json!({"cdniip": "127.0.0.1"}),
            ip("::ffff:127.0.0.1"),
            Ok(()),
        ),
        (
            json!({"cdniip": "127.0.0.1"}),
            ip("127.0.0.2"),
            Err(Reject::AddressMismatch),
        ),
        (
            json!({"cdniip": "127.0.0.1"}),
            None,
            Err(Reject::AddressMismatch),
        ),
        (
            json!({"cdniip": "198.51.100.0/24"}),
            ip("198.51.100.77"),
            Ok(()),
        ),
        (
            json!({"cdniip": "198.51.100.0/24"}),
            ip("198.51.101.1"),
            Err(Reject::AddressMismatch),
        ),
        (
            json!({"cdniip": "2001:db8::/32"}),
            ip("2001:db8:1::5"),
            Ok(()),
        ),
        (
            json!({"cdniip": "2001:db8::/32"}),
            ip("198.51.100.1"),
            Err(Reject::AddressMismatch),
        ),
        (json!({"cdniip": "2001:db8::1"}), ip("2001:db8::1"), Ok(())),
    ];
    for (claims, client, want) in cases {
        let cdni = read(claims.clone()).expect("readable");
        assert_eq!(cdni.check(client, || None), want, "{claims} {client:?}");
    }
    for bad in [
        json!("300.1.1.1"),
        json!("10.0.0.0/33"),
        json!("host.example"),
        json!(""),
        json!(7),
        json!(["127.0.0.1"]),
    ] {
        assert_eq!(
            read(json!({"cdniip": bad})).map(|_| ()),
            Err(Reject::Malformed),
            "{bad}"
        );
    }
    assert!(Reject::AddressMismatch.is_forbidden());
}
