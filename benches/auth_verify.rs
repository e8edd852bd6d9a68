//! Cost of `Verifier::verify` for one valid token, per algorithm: HS256, RS256 (2048-bit),
//! ES256 and EdDSA, with the aws-lc-rs backend.
//!
//! Every request to a protected path pays this once, so it bounds the token-checked request
//! rate of one core. The measured call is the whole check the node makes (size limit, header,
//! key selection by `kid`, signature, typed claim checks), not the bare signature, so a
//! regression anywhere in the module shows here. Targets on the 2-core reference machine:
//! HS256 <= 3 us, RS256 <= 40 us, ES256 <= 60 us, EdDSA <= 40 us.
//!
//! Run: `cargo bench --bench auth_verify -- --warm-up-time 1 --measurement-time 3`

use std::path::{Path, PathBuf};

use cdn_node::auth::settings::{AuthSettings, KeySettings};
use cdn_node::auth::{MintSpec, RequestFacts, Verifier, mint};
use criterion::{Criterion, criterion_group, criterion_main};

const NOW: u64 = 1_700_000_000;

/// (algorithm, private key file for minting, public key or secret file for verifying)
const CASES: [(&str, &str, &str); 4] = [
    ("HS256", "hmac.secret", "hmac.secret"),
    ("RS256", "rsa2048.pem", "rsa2048.pub.pem"),
    ("ES256", "ec-p256.pem", "ec-p256.pub.pem"),
    ("EdDSA", "ed25519.pem", "ed25519.pub.pem"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

fn setup(alg: &str, private: &str, public: &str) -> (Verifier, String) {
    let hmac = alg.starts_with("HS");
    let key = KeySettings {
        kid: Some("k1".to_owned()),
        algorithm: Some(alg.to_owned()),
        secret_file: hmac.then(|| public.into()),
        public_key_file: (!hmac).then(|| public.into()),
        ..KeySettings::default()
    };
    let settings = AuthSettings {
        keys: vec![key],
        issuer: Some("https://learn.example".to_owned()),
        audience: Some("cdn-node".into()),
        ..AuthSettings::default()
    };
    let verifier = match Verifier::from_settings(&settings, &fixtures()) {
        Ok(verifier) => verifier,
        Err(problems) => panic!("bench settings refused: {problems:?}"),
    };
    let spec = MintSpec {
        key_file: fixtures().join(private),
        algorithm: alg.to_owned(),
        kid: Some("k1".to_owned()),
        subject: Some("student-7".to_owned()),
        ttl_seconds: 3600,
        issuer: Some("https://learn.example".to_owned()),
        audience: Some("cdn-node".to_owned()),
        extra_claims: vec!["jti=\"a1b2c3\"".to_owned()],
        now_unix: NOW,
    };
    let token = mint(&spec).unwrap_or_else(|e| panic!("bench token for {alg}: {e}"));
    if let Err(reject) = verifier.verify(&token, NOW) {
        panic!("bench token for {alg} does not verify: {reject}");
    }
    (verifier, token)
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth_verify");
    for (alg, private, public) in CASES {
        let (verifier, token) = setup(alg, private, public);
        group.bench_function(alg, |b| {
            b.iter(|| verifier.verify(std::hint::black_box(&token), NOW))
        });
    }
    group.finish();
}

/// The per-request cost of `Verifier::authorize` once the token is in the verified-token
/// cache (a player fetching segments): cache look-up plus the request checks (exp, denylist,
/// path scope). Target: <= 1 us.
fn authorize_cached(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth_authorize_cached");
    for (alg, private, public) in [CASES[0], CASES[1]] {
        let (verifier, token) = setup(alg, private, public);
        let facts = RequestFacts {
            path: "/courses/101/hls/seg-00042.ts",
            client: None,
            host: None,
            query: "",
        };
        if let Err(reject) = verifier.authorize(&token, &facts, NOW) {
            panic!("bench token for {alg} is not authorized: {reject}");
        }
        group.bench_function(alg, |b| {
            b.iter(|| verifier.authorize(std::hint::black_box(&token), &facts, NOW))
        });
    }
    group.finish();
}

criterion_group!(benches, verify, authorize_cached);
criterion_main!(benches);
