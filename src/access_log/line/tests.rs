//! Lines written by hand against the same entry put through `serde_json`,
//! byte for byte, and read back field by field, for inputs that need care.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::super::time::rfc3339;
use super::{Client, Entry};
use crate::auth::redact_query;
use crate::auth::settings::{TokenSource, default_token_sources};

/// The entry as it was serialized before lines were written by hand.
#[derive(Serialize)]
struct Reference<'a> {
    time: String,
    client: String,
    method: &'a str,
    path: String,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    cache: &'a str,
    origin_status: Option<u16>,
    origin_ms: Option<f64>,
    origin_error: Option<&'a str>,
    s3_code: Option<&'a str>,
    auth: &'a str,
    sub: Option<&'a str>,
}

fn reference(e: &Entry<'_>) -> Vec<u8> {
    let path = match e.target.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_query(e.token_sources, query)),
        None => e.target.to_owned(),
    };
    let r = Reference {
        time: rfc3339(e.time),
        client: e.client.map(|c| c.to_string()).unwrap_or_default(),
        method: e.method,
        path,
        status: e.status,
        bytes: e.bytes,
        duration_ms: e.duration_ms,
        cache: e.cache,
        origin_status: e.origin_status,
        origin_ms: e.origin_ms,
        origin_error: e.origin_error,
        s3_code: e.s3_code,
        auth: e.auth,
        sub: e.sub,
    };
    let mut line = serde_json::to_vec(&r).expect("serializable");
    line.push(b'\n');
    line
}

/// A client whose text needs escaping, as a Unix socket path might.
struct Odd;

impl fmt::Display for Odd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/run/\"node\"\\")?;
        f.write_str("sock\u{1}")
    }
}

struct Case {
    name: &'static str,
    target: &'static str,
    /// Fields expected back; `path` always among them.
    want: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "plain",
        target: "/courses/101/seg-1.ts",
        want: &[("path", "/courses/101/seg-1.ts")],
    },
    Case {
        name: "token among others",
        target: "/v/a.ts?a=1&jwt=eyJ.x.y&b=2",
        want: &[("path", "/v/a.ts?a=1&jwt=REDACTED&b=2")],
    },
    Case {
        name: "escaped token name",
        target: "/v/a.ts?j%77t=eyJ.x.y",
        want: &[("path", "/v/a.ts?j%77t=REDACTED")],
    },
    Case {
        name: "plus in a name",
        target: "/v/a.ts?my+token=secret&x+y=1",
        want: &[("path", "/v/a.ts?my+token=REDACTED&x+y=1")],
    },
    Case {
        name: "empty query",
        target: "/v/a.ts?",
        want: &[("path", "/v/a.ts?")],
    },
    Case {
        name: "question mark in the query",
        target: "/v?a=?&token=t?u",
        want: &[("path", "/v?a=?&token=REDACTED")],
    },
    Case {
        name: "many params",
        target: "/v/a.m3u8?a=1&b=2&c=3&d=4&e=5&f=6&g=7&token=t0k3n&h=8&i=9&j=10&jwt=x",
        want: &[(
            "path",
            "/v/a.m3u8?a=1&b=2&c=3&d=4&e=5&f=6&g=7&token=REDACTED&h=8&i=9&j=10&jwt=REDACTED",
        )],
    },
    Case {
        name: "quotes and backslashes",
        target: "/a\"b\\c?q=\"\\&jwt=\"",
        want: &[("path", "/a\"b\\c?q=\"\\&jwt=REDACTED")],
    },
    Case {
        name: "control characters",
        target: "/a\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}?jwt=\n",
        want: &[(
            "path",
            "/a\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}?jwt=REDACTED",
        )],
    },
    Case {
        name: "unicode",
        target: "/vidéo/日本語/😀.ts?ü=ö&jwt=é",
        want: &[("path", "/vidéo/日本語/😀.ts?ü=ö&jwt=REDACTED")],
    },
];

fn sources() -> Vec<TokenSource> {
    let mut sources = default_token_sources();
    sources.push(TokenSource::Query("my token".to_owned()));
    sources
}

fn entry<'a>(target: &'a str, sources: &'a [TokenSource]) -> Entry<'a> {
    Entry {
        time: UNIX_EPOCH + Duration::from_millis(1_795_740_123_042),
        client: None,
        method: "GET",
        target,
        token_sources: sources,
        status: 200,
        bytes: 1024,
        duration_ms: 0.173,
        cache: "hit",
        origin_status: None,
        origin_ms: None,
        origin_error: None,
        s3_code: None,
        auth: "ok",
        sub: Some("student-7"),
    }
}

fn written(e: &Entry<'_>) -> Vec<u8> {
    let mut out = b"earlier line\n".to_vec();
    e.write_line(&mut out);
    out.split_off("earlier line\n".len())
}

fn parsed(line: &[u8]) -> Value {
    assert_eq!(line.last(), Some(&b'\n'), "a whole line");
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line: {}",
        String::from_utf8_lossy(line)
    );
    serde_json::from_slice(line).expect("valid JSON")
}

const FIELDS: &[&str] = &[
    "time",
    "client",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "cache",
    "origin_status",
    "origin_ms",
    "origin_error",
    "s3_code",
    "auth",
    "sub",
];

#[test]
fn targets() {
    let sources = sources();
    for case in CASES {
        let e = entry(case.target, &sources);
        let line = written(&e);
        assert_eq!(
            String::from_utf8_lossy(&line),
            String::from_utf8_lossy(&reference(&e)),
            "{}",
            case.name
        );
        let v = parsed(&line);
        for (field, want) in case.want {
            assert_eq!(v[field], *want, "{}: {field}", case.name);
        }
        // The order is checked against the reference above; here, that
        // nothing is missing or extra.
        let mut keys: Vec<_> = v.as_object().expect("an object").keys().collect();
        let mut fields = FIELDS.to_vec();
        keys.sort();
        fields.sort();
        assert_eq!(keys, fields, "{}: fields", case.name);
        assert_eq!(v["time"], "2026-11-27T00:42:03.042Z", "{}", case.name);
        assert!(
            !String::from_utf8_lossy(&line).contains("eyJ"),
            "{}",
            case.name
        );
    }
}

#[test]
fn clients() {
    let sources = sources();
    let v4: SocketAddr = "192.0.2.1:1234".parse().expect("address");
    let v6: SocketAddr = "[2001:db8::1]:443".parse().expect("address");
    let scoped: SocketAddr = "[fe80::1%7]:80".parse().expect("address");
    let ip: IpAddr = "2001:db8::9".parse().expect("address");
    let SocketAddr::V4(v4_only) = v4 else {
        unreachable!("an IPv4 address")
    };
    let edges: SocketAddrV4 = "0.0.0.0:0".parse().expect("address");
    let top: SocketAddrV4 = "255.255.255.255:65535".parse().expect("address");
    let cases: [(Option<Client<'_>>, &str); 10] = [
        (None, ""),
        (Some(Client::V4(v4_only)), "192.0.2.1:1234"),
        (Some(Client::V4(edges)), "0.0.0.0:0"),
        (Some(Client::V4(top)), "255.255.255.255:65535"),
        (Some(Client::Shown(&v4)), "192.0.2.1:1234"),
        (Some(Client::Shown(&v6)), "[2001:db8::1]:443"),
        (Some(Client::Shown(&scoped)), "[fe80::1%7]:80"),
        (Some(Client::Shown(&ip)), "2001:db8::9"),
        (Some(Client::Shown(&Odd)), "/run/\"node\"\\sock\u{1}"),
        (
            Some(Client::V4("10.20.30.40:8080".parse().expect("address"))),
            "10.20.30.40:8080",
        ),
    ];
    for (client, want) in cases {
        let e = Entry {
            client,
            ..entry("/a", &sources)
        };
        let line = written(&e);
        assert_eq!(line, reference(&e), "{want}");
        assert_eq!(parsed(&line)["client"], want);
    }
}

#[test]
fn every_other_field() {
    let sources = sources();
    let full = Entry {
        method: "PURGE\"",
        status: 502,
        bytes: u64::MAX,
        duration_ms: 1.0,
        cache: "miss",
        origin_status: Some(403),
        origin_ms: Some(12.5),
        origin_error: Some("s3_denied"),
        s3_code: Some("Access\"Denied\\\u{2}"),
        auth: "expired",
        sub: Some("ünï\"cødé\n"),
        ..entry("/a", &sources)
    };
    let line = written(&full);
    assert_eq!(line, reference(&full));
    let v = parsed(&line);
    assert_eq!(v["method"], "PURGE\"");
    assert_eq!(v["status"], 502);
    assert_eq!(v["bytes"], u64::MAX);
    assert_eq!(v["duration_ms"], 1.0);
    assert_eq!(v["origin_status"], 403);
    assert_eq!(v["origin_ms"], 12.5);
    assert_eq!(v["s3_code"], "Access\"Denied\\\u{2}");
    assert_eq!(v["sub"], "ünï\"cødé\n");

    let empty = Entry {
        status: 0,
        bytes: 0,
        duration_ms: f64::NAN,
        origin_ms: Some(f64::INFINITY),
        sub: None,
        ..entry("", &sources)
    };
    let line = written(&empty);
    assert_eq!(line, reference(&empty));
    let v = parsed(&line);
    assert_eq!(v["path"], "");
    assert_eq!(v["duration_ms"], Value::Null);
    assert_eq!(v["origin_ms"], Value::Null);
    assert_eq!(v["sub"], Value::Null);

    for ms in [0.0, 1e-7, 0.000_5, 123_456.789, 1e21] {
        let e = Entry {
            duration_ms: ms,
            ..entry("/a", &sources)
        };
        assert_eq!(written(&e), reference(&e), "{ms}");
    }
}

/// Every single byte value a string can start with, each alone.
#[test]
fn every_ascii_character() {
    let sources = sources();
    for b in 0u8..0x80 {
        let text = String::from(char::from(b));
        let e = Entry {
            sub: Some(&text),
            ..entry("/a", &sources)
        };
        let line = written(&e);
        assert_eq!(line, reference(&e), "byte {b:#x}");
        assert_eq!(parsed(&line)["sub"], text.as_str());
    }
}

#[test]
fn times_move_on() {
    let sources = sources();
    let at = |ms: u64| Entry {
        time: UNIX_EPOCH + Duration::from_millis(ms),
        ..entry("/a", &sources)
    };
    for ms in [0, 999, 1_000, 1_795_740_123_042, 1_795_740_124_001, 5] {
        let e = at(ms);
        assert_eq!(written(&e), reference(&e), "{ms}");
    }
    let now = SystemTime::now();
    let e = at(0);
    let e = Entry { time: now, ..e };
    assert_eq!(written(&e), reference(&e));
}
