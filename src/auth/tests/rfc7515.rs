//! RFC 7515 appendix A vectors: A.1 (HS256), A.2 (RS256), A.3 (ES256) verify while their `exp`
//! (2011-03-22) is ahead and expire after it; A.5 (`alg` none) never verifies. The examples'
//! public keys are in `tests/fixtures/keys/rfc7515.jwks.json`, which also exercises JWKS loading.

use serde_json::json;

use super::keys::{b64, load};
use crate::auth::reject::Reject;
use crate::auth::settings::{AuthSettings, KeySettings};
use crate::auth::verifier::Verifier;

const PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const EXP: u64 = 1_300_819_380;

fn a1() -> String {
    format!(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    )
}

fn a2() -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{PAYLOAD}.{}",
        concat!(
            "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
            "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
            "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
            "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
            "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
            "p0igcN_IoypGlUPQGe77Rw",
        )
    )
}

fn a3() -> String {
    format!(
        "eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.{}",
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    )
}

fn a5() -> String {
    format!("eyJhbGciOiJub25lIn0.{PAYLOAD}.")
}

fn verifier() -> Verifier {
    let entry = KeySettings {
        jwks_file: Some("rfc7515.jwks.json".into()),
        ..KeySettings::default()
    };
    load(&AuthSettings {
        keys: vec![entry],
        ..AuthSettings::default()
    })
}

#[test]
fn vectors_verify_before_exp_and_expire_after() {
    let v = verifier();
    for (name, token) in [("A.1", a1()), ("A.2", a2()), ("A.3", a3())] {
        let claims = v
            .verify(&token, EXP - 100)
            .unwrap_or_else(|r| panic!("{name}: {r:?}"));
        assert_eq!(claims.exp, Some(EXP), "{name}");
        assert_eq!(claims.all.get("iss"), Some(&json!("joe")), "{name}");
        assert_eq!(
            claims.all.get("http://example.com/is_root"),
            Some(&json!(true))
        );
        assert!(v.verify(&token, EXP + 5).is_ok(), "{name}: inside leeway");
        assert_eq!(v.verify(&token, EXP + 6), Err(Reject::Expired), "{name}");
    }
}

#[test]
fn a5_unsecured_is_refused() {
    let v = verifier();
    assert_eq!(v.verify(&a5(), EXP - 100), Err(Reject::WrongAlgorithm));
}

#[test]
fn es256_zero_signature_is_refused() {
    let zero = b64(&"\0".repeat(64));
    let token = format!("eyJhbGciOiJFUzI1NiJ9.{PAYLOAD}.{zero}");
    assert_eq!(
        verifier().verify(&token, EXP - 100),
        Err(Reject::BadSignature)
    );
}
