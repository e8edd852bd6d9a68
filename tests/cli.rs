//! The command line: `check` reports every problem with its key, `token`
//! mints a token the node accepts.

mod common;

use common::cli::{DUMMY_SECRETS, cdn_node as node, check};

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
    let out = check(std::path::Path::new(conf));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the secret's variable, the error names it and does not leak
    // the other secrets.
    let others: Vec<(&str, &str)> = DUMMY_SECRETS
        .iter()
        .copied()
        .filter(|(name, _)| *name != "CDN_NODE_HMAC_SECRET")
        .collect();
    let out = node()
        .args(["check", "-c", conf])
        .env_remove("CDN_NODE_HMAC_SECRET")
        .envs(others.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CDN_NODE_HMAC_SECRET"), "{err}");
    assert_eq!(others.len(), 2);
    for (name, value) in others {
        assert!(!err.contains(value), "{name} leaked: {err}");
    }
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

/// Settings out of range, each reported under its key with the fix.
const OUT_OF_RANGE: &[(&str, &str, &str)] = &[
    (
        "cache:\n  dir: c\n  slice_size: 1KiB\n",
        "cache.slice_size",
        "use 64KiB to 64MiB",
    ),
    (
        "cache:\n  dir: c\n  read_ahead_slices: 99\n",
        "cache.read_ahead_slices",
        "use 0 to 16",
    ),
    (
        "cache:\n  dir: c\n  memory_size: 65GiB\n",
        "cache.memory_size",
        "use 0 (none) to 64GiB",
    ),
    (
        "cache:\n  dir: c\n  memory_size: 64MiB\n  memory_object_max_size: 32MiB\n",
        "cache.memory_object_max_size",
        "lower it or raise memory_size",
    ),
    (
        "cache:\n  dir: c\n  memory_size: lots\n",
        "cache",
        "\"lots\" is not a size: write bytes or a number with KiB",
    ),
    (
        "cache:\n  dir: c\n  durable_commits: yes please\n",
        "cache.durable_commits",
        "expected a boolean",
    ),
    (
        "log:\n  access_buffer: 17MiB\n",
        "log.access_buffer",
        "use 0 (a write per line) to 16MiB",
    ),
    (
        "log:\n  access_flush_ms: 0\n",
        "log.access_flush_ms",
        "use 10 to 60000 milliseconds",
    ),
    (
        "server:\n  threads: many\n",
        "server.threads",
        "expected usize",
    ),
];

#[test]
fn check_names_the_key_and_the_fix_of_each_setting_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let base = "listeners:\n  http: [\"127.0.0.1:8080\"]\nadmin:\n  listen: \"127.0.0.1:9091\"\n\
                origin:\n  endpoint: \"http://127.0.0.1:9000\"\n  bucket: videos\n  credentials: { from: env }\n\
                auth:\n  keys:\n    - algorithm: HS256\n      secret_env: CDN_NODE_HMAC_SECRET\n";
    for (i, (section, key, fix)) in OUT_OF_RANGE.iter().enumerate() {
        let conf = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&conf, format!("{base}{section}")).unwrap();
        let out = check(&conf);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{section}: accepted\n{err}");
        assert!(err.contains(key), "{section}: {key} not named in\n{err}");
        assert!(
            err.contains(fix),
            "{section}: fix {fix:?} not given in\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // The base itself is accepted: each refusal above is the setting's.
    let conf = dir.path().join("base.yaml");
    std::fs::write(&conf, base).unwrap();
    let out = check(&conf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
