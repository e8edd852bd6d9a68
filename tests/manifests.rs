//! Token propagation with the real node: HLS playlists and DASH MPDs asked
//! for with `?jwt=` come back with every same-host URI carrying the token,
//! each URI then works as written, and the stored manifest stays the
//! origin's, token-free, one copy for every student.

mod common;

use common::http::{header, metric, raw};
use common::token::{good_claims, hs256};
use common::world::World;
use serde_json::json;

const MASTER: &str = "courses/101/hls/master.m3u8";
const MEDIA: &str = "courses/101/hls/720p/index.m3u8";
const MPD: &str = "courses/101/dash/manifest.mpd";

const MASTER_BODY: &str = "#EXTM3U\n\
#EXT-X-VERSION:6\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud\"\n\
720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=300000\n\
https://elsewhere.example/360p/index.m3u8\n";

const MEDIA_BODY: &str = "#EXTM3U\r\n\
#EXT-X-TARGETDURATION:2\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\",IV=0x0123456789abcdef0123456789abcdef\r\n\
#EXT-X-MAP:URI=\"init.mp4\"\r\n\
#EXTINF:2.0,\r\n\
seg-001.m4s\r\n\
#EXTINF:2.0,\r\n\
seg-002.m4s?part=2\r\n\
#EXT-X-ENDLIST";

const MPD_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S">
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate initialization="v/init.mp4" media="v/seg-$Number$.m4s" startNumber="1" duration="2" timescale="1"/>
      <Representation id="v" bandwidth="500000"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

fn objects() -> Vec<(String, Vec<u8>)> {
    let mut o: Vec<(String, Vec<u8>)> = vec![
        (MASTER.into(), MASTER_BODY.into()),
        (MEDIA.into(), MEDIA_BODY.into()),
        (MPD.into(), MPD_BODY.into()),
        (
            "courses/101/hls/audio/index.m3u8".into(),
            "#EXTM3U\n#EXT-X-ENDLIST\n".into(),
        ),
        ("courses/101/dash/v/init.mp4".into(), vec![1; 100]),
        ("courses/101/dash/v/seg-1.m4s".into(), vec![2; 1000]),
        (
            "courses/101/hls/not-a-playlist.m3u8".into(),
            "<html>oops</html>".into(),
        ),
    ];
    for name in ["key.bin", "init.mp4", "seg-001.m4s", "seg-002.m4s"] {
        o.push((format!("courses/101/hls/720p/{name}"), vec![7; 2000]));
    }
    o
}

async fn world(cache_extra: &str) -> World {
    World::builder()
        .objects(&objects())
        .tap()
        .cache(cache_extra)
        .configure(|o| {
            o.extra_auth = "  scope_claim: paths\n  allow_unscoped_tokens: true\n".into()
        })
        .start()
        .await
}

/// The URIs of a playlist: its URI lines and its `URI="..."` attributes.
fn hls_uris(body: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(at) = rest.find("URI=\"") {
                let value = &rest[at + 5..];
                uris.push(value[..value.find('"').unwrap()].to_string());
            }
        } else {
            uris.push(line.to_string());
        }
    }
    uris
}

/// `uri` resolved against the folder of `base` (a path without query).
fn resolve(base: &str, uri: &str) -> String {
    let dir = &base[..base.rfind('/').unwrap() + 1];
    format!("{dir}{uri}")
}

/// `cdn_node_manifests_as_stored_total` by `reason`, in `metrics`.
fn as_stored(metrics: &str) -> impl Fn(&str) -> f64 + '_ {
    move |reason| {
        metric(
            metrics,
            "cdn_node_manifests_as_stored_total",
            &[("reason", reason)],
        )
    }
}

async fn get(
    w: &World,
    target: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = raw(w.node.http, "GET", target, extra).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_same_host_uri_carries_the_token_and_works_as_written() {
    let w = world("").await;
    let token = w.token.clone();
    for (path, tries) in [(MASTER, 1), (MEDIA, 2)] {
        for attempt in 0..tries {
            let (status, h, body) = get(&w, &format!("/{path}?jwt={token}"), &[]).await;
            assert_eq!(status, 200, "{path}");
            // A miss streams through Pingora (chunked); a hit has the exact
            // length of the rewritten body.
            let length = header(&h, "content-length").map(|v| v.parse::<usize>().unwrap());
            if attempt > 0 {
                assert_eq!(length, Some(body.len()), "{path}: Content-Length of a hit");
            } else if let Some(length) = length {
                assert_eq!(length, body.len(), "{path}: Content-Length");
            }
            let uris = hls_uris(&body);
            assert!(!uris.is_empty());
            for uri in &uris {
                if uri.starts_with("https://elsewhere.example/") {
                    assert!(
                        !uri.contains("jwt="),
                        "another host's URI is left alone: {uri}"
                    );
                    continue;
                }
                assert!(uri.contains(&format!("jwt={token}")), "{path}: {uri}");
                let target = resolve(&format!("/{path}"), uri);
                let (status, _, _) = get(&w, &target, &[]).await;
                assert_eq!(status, 200, "{target} as written");
            }
        }
    }
    // Line endings and the missing final newline are kept.
    let (_, _, media) = get(&w, &format!("/{MEDIA}?jwt={token}"), &[]).await;
    assert!(media.contains("\r\nseg-001.m4s?jwt="), "{media}");
    assert!(media.ends_with("#EXT-X-ENDLIST"));
    assert!(media.contains(&format!("seg-002.m4s?part=2&jwt={token}")));
    assert!(w.metric("cdn_node_manifests_rewritten_total", &[]).await >= 3.0);

    // The store holds the origin's manifests, no token anywhere.
    let mut stack = vec![w.cache_dir().to_path_buf()];
    let mut files = 0;
    // A fill still being committed may move a file away as it is listed.
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                files += 1;
                let hay = String::from_utf8_lossy(&bytes);
                assert!(!hay.contains(&token), "{} holds a token", path.display());
            }
        }
    }
    assert!(files > 4, "objects were stored");
}

#[tokio::test]
async fn a_second_student_gets_the_same_copy_with_her_own_token() {
    let w = world("").await;
    let alice = w.token.clone();
    let bob = hs256(&good_claims("bob"));
    let (status, _, first) = get(&w, &format!("/{MASTER}?jwt={alice}"), &[]).await;
    assert_eq!(status, 200);
    let (gets_before, _) = w.tap().origin_requests();
    let (status, h, body) = get(&w, &format!("/{MASTER}?jwt={bob}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), Some("HIT"));
    assert_eq!(
        w.tap().origin_requests().0,
        gets_before,
        "no origin request"
    );
    assert!(body.contains(&format!("jwt={bob}")));
    assert!(!body.contains(&alice));
    assert_eq!(body.replace(&bob, "T"), first.replace(&alice, "T"));
    let len: usize = header(&h, "content-length").unwrap().parse().unwrap();
    assert_eq!(len, body.len());
    let etag = header(&h, "etag").unwrap_or_default();
    assert!(
        etag.is_empty() || etag.starts_with("W/"),
        "no strong ETag: {etag}"
    );

    // A Range is answered from the rewritten body.
    let (status, h, part) = get(
        &w,
        &format!("/{MASTER}?jwt={bob}"),
        &[("range", "bytes=0-15")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(part, body[..16]);
    let total = format!("bytes 0-15/{}", body.len());
    assert_eq!(header(&h, "content-range"), Some(total.as_str()));
    let (status, _, tail) = get(
        &w,
        &format!("/{MASTER}?jwt={bob}"),
        &[("range", "bytes=-20")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(tail, body[body.len() - 20..]);
}

#[tokio::test]
async fn dash_templates_get_the_token() {
    let w = world("").await;
    let token = w.token.clone();
    let (status, _, body) = get(&w, &format!("/{MPD}?jwt={token}"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("initialization=\"v/init.mp4?jwt={token}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("media=\"v/seg-$Number$.m4s?jwt={token}\"")),
        "{body}"
    );
    for uri in [
        format!("v/init.mp4?jwt={token}"),
        format!("v/seg-1.m4s?jwt={token}"),
    ] {
        let (status, _, _) = get(&w, &resolve(&format!("/{MPD}"), &uri), &[]).await;
        assert_eq!(status, 200, "{uri}");
    }
}

#[tokio::test]
async fn a_token_from_a_cookie_or_header_needs_no_rewrite() {
    let w = world("").await;
    let cookie = format!("jwt={}", w.token);
    let (status, _, body) = get(&w, &format!("/{MASTER}"), &[("cookie", &cookie)]).await;
    assert_eq!((status, body.as_str()), (200, MASTER_BODY));
    let bearer = format!("Bearer {}", w.token);
    let (status, _, body) = get(&w, &format!("/{MEDIA}"), &[("authorization", &bearer)]).await;
    assert_eq!((status, body.as_str()), (200, MEDIA_BODY));
}

#[tokio::test]
async fn manifests_too_large_or_unparsable_are_sent_as_stored_and_counted() {
    let w = world("  manifest_max_size: 100\n").await;
    let token = w.token.clone();
    for attempt in ["miss", "hit"] {
        let (status, _, body) = get(&w, &format!("/{MASTER}?jwt={token}"), &[]).await;
        assert_eq!((status, body.as_str()), (200, MASTER_BODY), "{attempt}");
    }
    let (status, _, body) = get(
        &w,
        &format!("/courses/101/hls/not-a-playlist.m3u8?jwt={token}"),
        &[],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "<html>oops</html>"));
    let metrics = w.metrics().await;
    let counted = as_stored(&metrics);
    assert!(counted("too_large") >= 1.0);
    assert_eq!(counted("unparsable"), 1.0);
}

#[tokio::test]
async fn a_course_scoped_token_opens_the_segments_of_its_course() {
    let w = world("").await;
    let mut claims = good_claims("carol");
    claims["paths"] = json!(["/courses/101/*"]);
    let token = hs256(&claims);
    let (status, _, body) = get(&w, &format!("/{MEDIA}?jwt={token}"), &[]).await;
    assert_eq!(status, 200);
    for uri in hls_uris(&body) {
        let (status, _, _) = get(&w, &resolve(&format!("/{MEDIA}"), &uri), &[]).await;
        assert_eq!(status, 200, "{uri}");
    }
    let (status, _, _) = get(&w, &format!("/courses/202/hls/x.m3u8?jwt={token}"), &[]).await;
    assert_eq!(status, 403, "another course stays closed");
}

/// `body` as one gzip member.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(body: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

/// A playlist an origin keeps gzip-compressed (S3 metadata, a web server
/// that always compresses) gets the token as a plain one does, on the
/// miss, from disk and from memory, and goes out compressed under the
/// same `Content-Encoding`; one in another coding, or inflating past
/// `manifest_max_size`, is sent as stored and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_playlist_gets_the_token_and_stays_gzip() {
    let origin = common::fault_origin::FaultOrigin::start().await;
    let coded = |coding: &'static str| {
        [
            ("Content-Type", "application/vnd.apple.mpegurl"),
            ("Content-Encoding", coding),
            ("Cache-Control", "max-age=600"),
        ]
    };
    origin.put_with_fields(
        "gz/index.m3u8",
        &gzip(MEDIA_BODY.as_bytes()),
        &coded("gzip"),
    );
    origin.put_with_fields("br/index.m3u8", b"\x1b\x03\x00brotli", &coded("br"));
    // 16 KiB of text in a few hundred bytes: past the 4 KiB limit.
    let padded = format!("#EXTM3U\n{}a.ts\n", "#EXT-X-COMMENT\n".repeat(1100));
    origin.put_with_fields("bomb/index.m3u8", &gzip(padded.as_bytes()), &coded("gzip"));
    let w = World::builder()
        .origin(origin.port)
        .cache("  status_header: x-cache\n  manifest_max_size: 4KiB\n")
        .configure(|o| o.http_origin = true)
        .start()
        .await;

    let bob = hs256(&good_claims("bob"));
    // The miss (gathered on Pingora's path), the disk hit, memory hits (the
    // hit lane), a second student.
    for (attempt, token) in [
        ("miss", &w.token),
        ("disk", &w.token),
        ("memory", &w.token),
        ("memory again", &w.token),
        ("second student", &bob),
    ] {
        let (status, h, body) = raw(
            w.node.http,
            "GET",
            &format!("/gz/index.m3u8?jwt={token}"),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{attempt}");
        assert_eq!(header(&h, "content-encoding"), Some("gzip"), "{attempt}");
        if let Some(len) = header(&h, "content-length") {
            assert_eq!(len.parse::<usize>().unwrap(), body.len(), "{attempt}");
        }
        let etag = header(&h, "etag").unwrap_or_default();
        assert!(etag.starts_with("W/\""), "{attempt}: {etag}");
        let text = gunzip(&body);
        let uris = hls_uris(&text);
        assert_eq!(uris.len(), 4, "{attempt}: {text}");
        for uri in &uris {
            assert!(uri.contains(&format!("jwt={token}")), "{attempt}: {uri}");
        }
        let untokened = text
            .replace(&format!("?jwt={token}"), "")
            .replace(&format!("&jwt={token}"), "");
        assert_eq!(untokened, MEDIA_BODY, "{attempt}");
    }
    assert_eq!(origin.requests(), 1);

    let coding = |path: &str| {
        if path.starts_with("/br") {
            "br"
        } else {
            "gzip"
        }
    };
    for path in ["/br/index.m3u8", "/bomb/index.m3u8"] {
        for attempt in ["miss", "hit"] {
            let (status, h, body) = raw(w.node.http, "GET", &w.target(path), &[]).await;
            assert_eq!(status, 200, "{path} {attempt}");
            let stored = if path.starts_with("/br") {
                b"\x1b\x03\x00brotli".to_vec()
            } else {
                gzip(padded.as_bytes())
            };
            assert_eq!(body, stored, "{path} {attempt}");
            assert_eq!(header(&h, "content-encoding"), Some(coding(path)));
        }
    }
    let metrics = w.metrics().await;
    let counted = as_stored(&metrics);
    assert_eq!(counted("encoded"), 2.0);
    assert_eq!(counted("too_large"), 2.0);
    assert_eq!(counted("unparsable"), 0.0);
}
