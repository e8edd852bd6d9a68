//! Input [`sign`] refuses (method, host, region, a path or query not in
//! canonical form) and input it must take (hosts, the canonical forms the
//! request module produces).

use super::super::*;
use super::{example_creds, example_time};

const REJECTS: &[(&str, &str, &str, &str, &str, SignError)] = &[
    (
        "POST",
        "h",
        "/a",
        "",
        "us-east-1",
        SignError::UnsupportedMethod(String::new()),
    ),
    (
        "get",
        "h",
        "/a",
        "",
        "us-east-1",
        SignError::UnsupportedMethod(String::new()),
    ),
    (
        "GET",
        "",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "u@h",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h/x",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h x",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h\r\n",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h:",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h:99999999",
        "/a",
        "",
        "us-east-1",
        SignError::InvalidHost(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "",
        "",
        SignError::InvalidRegion(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "",
        "us east",
        SignError::InvalidRegion(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "",
        "us/east",
        SignError::InvalidRegion(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "",
        "x\n",
        SignError::InvalidRegion(String::new()),
    ),
    (
        "GET",
        "h",
        "a",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a?b",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a#b",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a b",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a\n",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "b c",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "b#c",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/é",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a%2a",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a+b",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a*b",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a%4",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a%",
        "",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "b=%2f",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "b=+",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
    (
        "GET",
        "h",
        "/a",
        "b=1;c=2",
        "us-east-1",
        SignError::InvalidUri(String::new()),
    ),
];

/// Raw request targets whose canonical path and query must be signable
/// as they are.
const CANONICAL_TARGETS: &[(&str, &str)] = &[
    ("/bucket/a.txt", ""),
    ("/bucket/a b+c~é(1)*.mp4", "partNumber=1"),
    ("/bucket/%e6%97%a5/%7Ex", "versionId=a/b+c&partNumber=2"),
    ("/bucket/dir/", "q=%2a%2A*"),
];

#[test]
fn canonical_paths_and_queries_sign() {
    use crate::request::{path, query};
    let creds = example_creds(None);
    for (raw_path, raw_query) in CANONICAL_TARGETS {
        let p = path::canonicalize(raw_path).expect("valid path");
        let pairs = query::parse(raw_query).expect("valid query");
        let q = query::canonical(&pairs, |_| true);
        let got = sign("GET", "h:1", &p, &q, "us-east-1", &creds, example_time());
        assert!(got.is_ok(), "{p:?} {q:?}: {got:?}");
    }
}

/// Host header values that must be accepted (signed verbatim).
const HOSTS: &[&str] = &[
    "examplebucket.s3.amazonaws.com",
    "s3.eu-west-1.amazonaws.com",
    "127.0.0.1",
    "127.0.0.1:9000",
    "localhost:19000",
    "[::1]",
    "[::1]:9000",
    "[2001:db8::1]:443",
    "minio_internal:9000",
];

#[test]
fn accepts_hosts() {
    let creds = example_creds(None);
    for host in HOSTS {
        let got = sign("GET", host, "/a", "", "us-east-1", &creds, example_time());
        assert!(got.is_ok(), "{host}: {got:?}");
    }
}

#[test]
fn rejects_bad_input() {
    let creds = example_creds(None);
    for (method, host, uri, query, region, want) in REJECTS {
        let got = sign(method, host, uri, query, region, &creds, example_time());
        let Err(err) = got else {
            panic!("must fail: {method} {host:?} {uri:?} {query:?} {region:?}")
        };
        assert_eq!(
            std::mem::discriminant(&err),
            std::mem::discriminant(want),
            "{method} {host:?} {uri:?} {query:?} {region:?}: {err}"
        );
    }
}
