use super::*;

/// The origin a YAML section gives, and the problems found in it.
fn parse(yaml: &str) -> (Option<OriginConfig>, Vec<Problem>) {
    let section: OriginSection = serde_yaml::from_str(yaml).expect(yaml);
    let mut problems = Vec::new();
    let origin = OriginConfig::from_section(&section, Path::new("."), &|_| None, &mut problems);
    (origin, problems)
}

/// The origin of a section that has no problem.
fn valid(yaml: &str) -> OriginConfig {
    let (origin, problems) = parse(yaml);
    origin.unwrap_or_else(|| panic!("{yaml}: {problems:?}"))
}

type Endpoint = (bool, &'static str, u16);
const ENDPOINTS: &[(&str, Option<Endpoint>)] = &[
    ("http://127.0.0.1:9000", Some((false, "127.0.0.1", 9000))),
    (
        "https://s3.eu-west-1.amazonaws.com",
        Some((true, "s3.eu-west-1.amazonaws.com", 443)),
    ),
    (
        "https://s3.example.org/",
        Some((true, "s3.example.org", 443)),
    ),
    ("http://minio", Some((false, "minio", 80))),
    ("http://[::1]:9000", Some((false, "::1", 9000))),
    ("http://[::1]", Some((false, "::1", 80))),
    ("ftp://host", None),
    ("127.0.0.1:9000", None),
    ("http://host:0", None),
    ("http://host:99999", None),
    ("http://host/bucket", None),
    ("http://user@host", None),
    ("http://", None),
    ("http://host:abc", None),
    ("http://ho st", None),
];

#[test]
fn endpoints() {
    for (input, want) in ENDPOINTS {
        let got = parse_endpoint(input).ok();
        let want = want.map(|(t, h, p)| (t, h.to_string(), p));
        assert_eq!(got, want, "endpoint {input}");
    }
}

const BUCKETS: &[(&str, bool)] = &[
    ("videos", true),
    ("my.videos-2", true),
    ("ab", false),
    ("Videos", false),
    ("-videos", false),
    ("videos.", false),
    ("vid_eos", false),
];

/// (origin section, the keys of the problems it has)
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}",
        &[],
    ),
    ("kind: http\nendpoint: http://web:8080", &[]),
    ("parents: [\"10.0.0.9:8090\"]", &[]),
    (
        "kind: http\nparents: [\"10.0.0.9:8090\", \"10.0.0.10:8090\"]",
        &[],
    ),
    ("bucket: videos", &["origin.endpoint"]),
    (
        "endpoint: http://s3:9000",
        &["origin.bucket", "origin.credentials"],
    ),
    (
        "kind: http\nendpoint: http://web:8080\nbucket: videos\ncredentials: {from: none}",
        &["origin.bucket", "origin.credentials"],
    ),
    ("parents: [\"10.0.0.9\"]", &["origin.parents[0]"]),
    ("parents: [\"h:1\"]\nkind: s3", &["origin.parents[0]"]),
    ("kind: ftp\nendpoint: http://s3", &["(yaml)"]),
];

#[test]
fn sections_by_kind() {
    for (yaml, want) in SECTIONS {
        let section: Result<OriginSection, _> = serde_yaml::from_str(yaml);
        let Ok(section) = section else {
            assert_eq!(*want, &["(yaml)"], "{yaml}");
            continue;
        };
        let mut problems = Vec::new();
        let got = OriginConfig::from_section(&section, Path::new("."), &|_| None, &mut problems);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, *want, "{yaml}");
        assert_eq!(got.is_some(), want.is_empty(), "{yaml}");
        for p in &problems {
            assert!(p.message.contains(':'), "{yaml}: {p} names no fix");
        }
    }
}

/// (origin section, query parameter names, whether each is passed on)
const QUERY: &[(&str, &[(&str, bool)])] = &[
    // Before S3: only what is named.
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}",
        &[("v", false), ("lang", false)],
    ),
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}\nforward_query: [v]",
        &[("v", true), ("V", false), ("lang", false)],
    ),
    // All of them, but S3's overrides and signature parameters.
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}\nforward_query: [\"*\"]",
        &[
            ("v", true),
            ("lang", true),
            ("response-content-type", false),
            ("X-Amz-Signature", false),
        ],
    ),
    // Before a web server: all of them unless told otherwise.
    (
        "kind: http\nendpoint: http://web:8080",
        &[("v", true), ("lang", true), ("response-content-type", true)],
    ),
    (
        "kind: http\nendpoint: http://web:8080\nforward_query: [v]",
        &[("v", true), ("lang", false)],
    ),
    (
        "kind: http\nendpoint: http://web:8080\nforward_query: []",
        &[("v", false)],
    ),
];

/// (origin section, methods and whether each goes on, or the problem)
type MethodCase = (
    &'static str,
    &'static [(&'static str, bool)],
    Option<&'static str>,
);

const METHODS: &[MethodCase] = &[
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}",
        &[
            ("GET", true),
            ("HEAD", true),
            ("POST", false),
            ("PUT", false),
        ],
        None,
    ),
    (
        "kind: http\nendpoint: http://web:8080",
        &[
            ("GET", true),
            ("POST", true),
            ("DELETE", true),
            ("M-SEARCH", true),
            ("CONNECT", false),
            ("TRACE", false),
        ],
        None,
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [POST]",
        &[
            ("HEAD", true),
            ("POST", true),
            ("PUT", false),
            ("post", false),
        ],
        None,
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: []",
        &[("GET", true), ("POST", false)],
        None,
    ),
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}\nmethods: [PUT]",
        &[],
        Some("origin.methods"),
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [POST, TRACE]",
        &[],
        Some("origin.methods[1]"),
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [\"BAD METHOD\"]",
        &[],
        Some("origin.methods[0]"),
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [PROPFIND, PURGE]",
        &[],
        Some("origin.methods[1]"),
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [post]",
        &[],
        Some("origin.methods[0]"),
    ),
];

/// (origin section, what a 405's `Allow` and a preflight name)
const ALLOWED: &[(&str, &str)] = &[
    (
        "endpoint: http://s3:9000\nbucket: videos\ncredentials: {from: none}",
        "GET, HEAD",
    ),
    (
        "kind: http\nendpoint: http://web:8080",
        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: [PROPFIND, DELETE, POST]",
        "GET, HEAD, POST, DELETE, PROPFIND",
    ),
    (
        "kind: http\nendpoint: http://web:8080\nmethods: []",
        "GET, HEAD",
    ),
    // Without a direct origin nothing but GET and HEAD is served.
    ("kind: http\nparents: [\"10.0.0.1:8081\"]", "GET, HEAD"),
];

#[test]
fn allowed_methods() {
    for (yaml, want) in ALLOWED {
        assert_eq!(valid(yaml).allowed().to_string(), *want, "{yaml}");
    }
}

#[test]
fn methods_passed_on() {
    for (yaml, methods, problem) in METHODS {
        let (origin, problems) = parse(yaml);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, problem.iter().copied().collect::<Vec<_>>(), "{yaml}");
        let Some(origin) = origin else { continue };
        for (method, want) in *methods {
            assert_eq!(origin.passes_method(method), *want, "{yaml}: {method}");
        }
    }
}

#[test]
fn query_parameters_passed_on() {
    for (yaml, names) in QUERY {
        let origin = valid(yaml);
        for (name, want) in *names {
            assert_eq!(origin.forwards_query(name), *want, "{yaml}: {name}");
        }
    }
}

#[test]
fn buckets() {
    for (name, ok) in BUCKETS {
        assert_eq!(valid_bucket(name), *ok, "bucket {name}");
    }
}

#[test]
fn host_header_and_uri() {
    let mut o = OriginConfig {
        kind: OriginKind::S3,
        direct: true,
        parents: Vec::new(),
        tls: false,
        endpoint_host: "127.0.0.1".into(),
        port: 9000,
        bucket: "videos".into(),
        region: "us-east-1".into(),
        addressing: Addressing::Path,
        credentials: None,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        resolve_interval: Duration::from_secs(1),
        forward_query: BTreeSet::new(),
        forward_all_query: false,
        methods: PassedMethods::None,
    };
    assert_eq!(o.host_header(), "127.0.0.1:9000");
    assert_eq!(o.object_uri("/a/b.mp4"), "/videos/a/b.mp4");
    o.addressing = Addressing::Virtual;
    o.endpoint_host = "s3.example.org".into();
    o.tls = true;
    o.port = 443;
    assert_eq!(o.host_header(), "videos.s3.example.org");
    assert_eq!(o.object_uri("/a/b.mp4"), "/a/b.mp4");
}
