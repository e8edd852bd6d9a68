//! The command line: `check` reports every problem with its key, `token`
//! mints a token the node accepts.

use std::process::Command;

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cdn-node"))
}

#[test]
fn check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.yaml");
    std::fs::write(
        &conf,
        r#"
listeners:
  http: ["0.0.0.0:notaport"]
admin:
  listen: "127.0.0.1:9091"
  colour: blue
origin:
  endpoint: "ftp://s3.example"
  bucket: "Bad_Bucket"
  credentials: { from: files }
auth:
  keys:
    - algorithm: HS256
      secret_file: missing.key
surprise: true
"#,
    )
    .unwrap();
    let out = node().args(["check", "-c"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "listeners.http[0]",
        "admin",
        "colour",
        "origin.endpoint",
        "origin.bucket",
        "origin.credentials.access_key_id_file",
        "origin.credentials.secret_access_key_file",
        "auth.keys[0]",
        "surprise",
    ] {
        assert!(err.contains(key), "{key} not reported in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_accepts_the_shipped_configuration() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/cdn-node.yaml");
    let out = node()
        .args(["check", "-c", conf])
        .env("CDN_NODE_HMAC_SECRET", "0123456789abcdef0123456789abcdef")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the secret's variable, the error names it and does not leak.
    let out = node()
        .args(["check", "-c", conf])
        .env_remove("CDN_NODE_HMAC_SECRET")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CDN_NODE_HMAC_SECRET"), "{err}");
    assert!(
        !err.contains("secret\n") && !err.contains("AKIDEXAMPLE"),
        "{err}"
    );
}

#[test]
fn token_mints_a_token_with_the_requested_claims() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hmac.key");
    let secret = "a-secret-of-at-least-thirty-two-bytes!!";
    std::fs::write(&key, secret).unwrap();
    let out = node()
        .args([
            "token", "--alg", "HS256", "--kid", "main", "--sub", "alice", "--ttl", "600",
        ])
        .args(["--claim", "course=101", "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .expect("the minted token verifies");
    assert_eq!(data.header.kid.as_deref(), Some("main"));
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["course"], 101);
    let exp = data.claims["exp"].as_u64().unwrap();
    let iat = data.claims["iat"].as_u64().unwrap();
    assert_eq!(exp - iat, 600);
}
