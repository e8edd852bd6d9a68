//! Which URIs get the token, where it goes, and how it is encoded, through
//! one-URI HLS playlists (the URI line is the only thing rewritten).

use super::*;

/// Rewrites the single URI `uri` for a request to `host`.
fn one(uri: &str, host: Option<&str>) -> String {
    let body = format!("#EXTM3U\n{uri}\n");
    let out = run(Kind::Hls, &body, host).expect("playlist parses");
    out.strip_prefix("#EXTM3U\n")
        .and_then(|o| o.strip_suffix('\n'))
        .expect("header and newline kept")
        .to_owned()
}

/// (URI, Host, expected URI with `{T}` for `jwt=<JWT>`)
const CASES: &[(&str, Option<&str>, &str)] = &[
    // Relative references: always on this host.
    ("seg.ts", Some(HOST), "seg.ts?{T}"),
    ("seg.ts", None, "seg.ts?{T}"),
    ("/abs/path/seg.ts", None, "/abs/path/seg.ts?{T}"),
    ("../up/seg.ts", None, "../up/seg.ts?{T}"),
    ("720p/index.m3u8", None, "720p/index.m3u8?{T}"),
    ("path/with:colon.ts", None, "path/with:colon.ts?{T}"),
    // Query and fragment handling.
    ("seg.ts?a=1", None, "seg.ts?a=1&{T}"),
    ("seg.ts?", None, "seg.ts?{T}"),
    ("seg.ts?a=1&", None, "seg.ts?a=1&{T}"),
    ("seg.ts#t=10", None, "seg.ts?{T}#t=10"),
    ("seg.ts?a=1#frag?x=1", None, "seg.ts?a=1&{T}#frag?x=1"),
    ("seg.ts#", None, "seg.ts?{T}#"),
    ("?only=query", None, "?only=query&{T}"),
    // Already carrying a token: any known parameter, decoded names, non-empty.
    ("seg.ts?jwt=other", None, "seg.ts?jwt=other"),
    ("seg.ts?a=1&token=other", None, "seg.ts?a=1&token=other"),
    ("seg.ts?j%77t=other", None, "seg.ts?j%77t=other"),
    ("seg.ts?jwt=", None, "seg.ts?jwt=&{T}"),
    ("seg.ts?jwt", None, "seg.ts?jwt&{T}"),
    ("seg.ts?xjwt=1&jwtx=2", None, "seg.ts?xjwt=1&jwtx=2&{T}"),
    ("seg.ts#jwt=frag", None, "seg.ts?{T}#jwt=frag"),
    ("seg.ts?JWT=upper", None, "seg.ts?JWT=upper&{T}"),
    // Absolute, this host: case, default ports.
    (
        "https://cdn.example/a/seg.ts",
        Some(HOST),
        "https://cdn.example/a/seg.ts?{T}",
    ),
    (
        "HTTPS://CDN.Example/a.ts",
        Some(HOST),
        "HTTPS://CDN.Example/a.ts?{T}",
    ),
    (
        "http://cdn.example:80/a.ts",
        Some(HOST),
        "http://cdn.example:80/a.ts?{T}",
    ),
    (
        "https://cdn.example:443/a.ts",
        Some(HOST),
        "https://cdn.example:443/a.ts?{T}",
    ),
    (
        "https://cdn.example/a.ts",
        Some("CDN.EXAMPLE:443"),
        "https://cdn.example/a.ts?{T}",
    ),
    (
        "https://cdn.example:8443/a.ts",
        Some("cdn.example:8443"),
        "https://cdn.example:8443/a.ts?{T}",
    ),
    ("https://cdn.example", Some(HOST), "https://cdn.example?{T}"),
    (
        "https://cdn.example?x=1",
        Some(HOST),
        "https://cdn.example?x=1&{T}",
    ),
    (
        "http://[::1]:8080/a.ts",
        Some("[::1]:8080"),
        "http://[::1]:8080/a.ts?{T}",
    ),
    // Network-path references: the scheme is the manifest's, either default port.
    ("//cdn.example/a.ts", Some(HOST), "//cdn.example/a.ts?{T}"),
    (
        "//cdn.example:443/a.ts",
        Some(HOST),
        "//cdn.example:443/a.ts?{T}",
    ),
    (
        "//cdn.example:80/a.ts",
        Some("cdn.example:443"),
        "//cdn.example:80/a.ts?{T}",
    ),
    // Absolute, not this host (or no Host to compare with): left alone.
    (
        "https://other.example/a.ts",
        Some(HOST),
        "https://other.example/a.ts",
    ),
    (
        "https://cdn.example.evil/a.ts",
        Some(HOST),
        "https://cdn.example.evil/a.ts",
    ),
    ("https://cdn.example/a.ts", None, "https://cdn.example/a.ts"),
    (
        "https://cdn.example:8443/a.ts",
        Some(HOST),
        "https://cdn.example:8443/a.ts",
    ),
    (
        "http://cdn.example:443/a.ts",
        Some(HOST),
        "http://cdn.example:443/a.ts",
    ),
    (
        "https://cdn.example/a.ts",
        Some("cdn.example:8443"),
        "https://cdn.example/a.ts",
    ),
    (
        "https://user@cdn.example/a.ts",
        Some(HOST),
        "https://user@cdn.example/a.ts",
    ),
    (
        "https://evil@cdn.example@x/a.ts",
        Some(HOST),
        "https://evil@cdn.example@x/a.ts",
    ),
    ("//other.example/a.ts", Some(HOST), "//other.example/a.ts"),
    ("//cdn.example/a.ts", None, "//cdn.example/a.ts"),
    (
        "//cdn.example:8080/a.ts",
        Some(HOST),
        "//cdn.example:8080/a.ts",
    ),
    (
        "https://cdn.example/a.ts",
        Some("user@cdn.example"),
        "https://cdn.example/a.ts",
    ),
    // Other schemes and odd forms: left alone.
    ("http:seg.ts", Some(HOST), "http:seg.ts"),
    (
        "ftp://cdn.example/a.ts",
        Some(HOST),
        "ftp://cdn.example/a.ts",
    ),
    ("data:text/plain,seg", Some(HOST), "data:text/plain,seg"),
    ("skd://key-id", Some(HOST), "skd://key-id"),
    ("urn:uuid:1234", Some(HOST), "urn:uuid:1234"),
    // A backslash may be read as `/` by browsers: `/\evil` is `//evil`.
    ("/\\evil.example/a.ts", Some(HOST), "/\\evil.example/a.ts"),
    (
        "https://cdn.example\\@evil/a.ts",
        Some(HOST),
        "https://cdn.example\\@evil/a.ts",
    ),
    (
        "/\u{1}/evil.example/a.ts",
        Some(HOST),
        "/\u{1}/evil.example/a.ts",
    ),
    // Whitespace around a URI line is kept around the rewritten URI.
    ("  seg.ts\t", None, "  seg.ts?{T}\t"),
    // DASH-style templates are never re-encoded: `$`, `%`, `$$` survive.
    ("seg-$Number%05d$.ts", None, "seg-$Number%05d$.ts?{T}"),
    ("a$$b.ts", None, "a$$b.ts?{T}"),
    ("caf%C3%A9/é.ts", None, "caf%C3%A9/é.ts?{T}"),
];

#[test]
fn which_uris_and_where() {
    for (uri, host, want) in CASES {
        assert_eq!(one(uri, *host), expect(want), "uri {uri:?}, host {host:?}");
    }
}

/// (token, encoded as written)
const TOKENS: &[(&str, &str)] = &[
    (JWT, JWT),
    ("a+b/c=", "a%2Bb%2Fc%3D"),
    ("x&y=z", "x%26y%3Dz"),
    ("100%", "100%25"),
    ("two words", "two%20words"),
    ("é€😀", "%C3%A9%E2%82%AC%F0%9F%98%80"),
    ("$Number$#?", "%24Number%24%23%3F"),
    ("\"quoted\",<x>", "%22quoted%22%2C%3Cx%3E"),
    ("-._~", "-._~"),
];

#[test]
fn token_is_percent_encoded() {
    for (value, encoded) in TOKENS {
        let out = rewrite(Kind::Hls, b"#EXTM3U\nseg.ts\n", &token(value), None).unwrap();
        let want = format!("#EXTM3U\nseg.ts?jwt={encoded}\n");
        assert_eq!(String::from_utf8(out).unwrap(), want, "token {value:?}");
    }
}

#[test]
fn param_name_is_encoded_and_counts_as_known() {
    let odd = Token {
        param: "my token",
        value: "v",
        known_params: &[],
    };
    let out = rewrite(Kind::Hls, b"#EXTM3U\na.ts\nb.ts?my+token=w\n", &odd, None).unwrap();
    assert_eq!(out, b"#EXTM3U\na.ts?my%20token=v\nb.ts?my+token=w\n");
}

#[test]
fn token_in_odd_token_is_escaped_in_xml() {
    let mpd = r#"<MPD><BaseURL>a.mp4</BaseURL><SegmentList><SegmentURL media="s&amp;1.m4s"/></SegmentList></MPD>"#;
    let out = rewrite(Kind::Dash, mpd.as_bytes(), &token("a&b<c>\"'"), None).unwrap();
    let want = "<MPD><BaseURL>a.mp4?jwt=a%26b%3Cc%3E%22%27</BaseURL><SegmentList>\
                <SegmentURL media=\"s&amp;1.m4s?jwt=a%26b%3Cc%3E%22%27\"/></SegmentList></MPD>";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}
