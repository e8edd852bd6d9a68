//! Cost of `manifest::rewrite` for one response: a 1,000-segment HLS media
//! playlist (`#EXTINF:6.000,` and `seg-00001.ts` lines, an AES-128 key and an
//! `EXT-X-MAP`) and a 1,000-segment DASH `SegmentList`, each carrying a
//! 258-byte JWT into every URI.
//!
//! Every response for a manifest pays this, once per student request (the
//! stored manifest is token-free, so the rewritten body is not cached), and
//! live playlists are requested every target duration by every viewer. The
//! measured call is the whole rewrite: UTF-8 check, parsing, decisions per
//! URI and the new body. Target on the 2-core reference machine: HLS
//! 1,000 segments <= 50 us. `hls_media_1000_plan_apply` is what a hit on
//! a playlist held in memory pays instead: its plan is kept, so only the
//! student's body is written (`Plan::apply`). `hls_media_1000_gzip` is the
//! same playlist stored gzip-coded, inflated and coded again per response
//! (no target: what such an origin costs).
//!
//! Run: `cargo bench --bench manifest_rewrite -- --warm-up-time 1 --measurement-time 3`

use cdn_node::manifest::{Coding, Kind, Plan, Token, rewrite, rewrite_coded};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SEGMENTS: usize = 1_000;

/// An HS256 token with the usual claims (iss, aud, sub, exp, iat, jti).
const JWT: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.\
                   eyJpc3MiOiJodHRwczovL2xlYXJuLmV4YW1wbGUiLCJhdWQiOiJjZG4tbm9kZSIsInN1YiI6InN0\
                   dWRlbnQtNyIsImV4cCI6MTcwMDAwMzYwMCwiaWF0IjoxNzAwMDAwMDAwLCJqdGkiOiJhMWIyYzNk\
                   NGU1ZjYifQ.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

const HOST: &str = "cdn.example";

fn hls_media_playlist() -> String {
    let mut body = String::from(
        "#EXTM3U\n\
         #EXT-X-VERSION:7\n\
         #EXT-X-TARGETDURATION:6\n\
         #EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-KEY:METHOD=AES-128,URI=\"keys/k1.key\",IV=0x0000000000000000000000000000A1B2\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for i in 1..=SEGMENTS {
        body.push_str(&format!("#EXTINF:6.000,\nseg-{i:05}.ts\n"));
    }
    body.push_str("#EXT-X-ENDLIST\n");
    body
}

fn dash_segment_list() -> String {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
         mediaPresentationDuration=\"PT6000S\" minBufferTime=\"PT2S\" \
         profiles=\"urn:mpeg:dash:profile:isoff-main:2011\">\n  \
         <Period id=\"0\">\n    \
         <AdaptationSet mimeType=\"video/mp4\" segmentAlignment=\"true\">\n      \
         <Representation id=\"720p\" bandwidth=\"2500000\" codecs=\"avc1.64001f\" \
         width=\"1280\" height=\"720\">\n        \
         <SegmentList timescale=\"1000\" duration=\"6000\">\n          \
         <Initialization sourceURL=\"init.mp4\"/>\n",
    );
    for i in 1..=SEGMENTS {
        body.push_str(&format!(
            "          <SegmentURL media=\"seg-{i:05}.m4s\"/>\n"
        ));
    }
    body.push_str(
        "        </SegmentList>\n      </Representation>\n    </AdaptationSet>\n  \
         </Period>\n</MPD>\n",
    );
    body
}

fn bench(c: &mut Criterion) {
    let token = Token {
        param: "jwt",
        value: JWT,
        known_params: &["jwt", "token"],
    };
    let mut group = c.benchmark_group("manifest_rewrite");
    for (name, kind, body) in [
        ("hls_media_1000", Kind::Hls, hls_media_playlist()),
        ("dash_segment_list_1000", Kind::Dash, dash_segment_list()),
    ] {
        let out = rewrite(kind, body.as_bytes(), &token, Some(HOST))
            .unwrap_or_else(|why| panic!("{name} refused: {why}"));
        let uris = out.len().saturating_sub(body.len()) / (JWT.len() + 5);
        assert_eq!(
            uris,
            SEGMENTS + 2 - usize::from(kind == Kind::Dash),
            "{name}"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                rewrite(
                    kind,
                    std::hint::black_box(body.as_bytes()),
                    &token,
                    Some(HOST),
                )
            })
        });
    }
    let body = hls_media_playlist();
    let plan = Plan::hls(body.as_bytes(), "jwt", &["jwt", "token"], Some(HOST)).expect("a plan");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hls_media_1000_plan_apply", |b| {
        b.iter(|| plan.apply(std::hint::black_box(body.as_bytes()), &token))
    });
    let coded = Coding::Gzip
        .encode(body.clone().into_bytes())
        .expect("gzip into memory");
    let limit = 4 << 20;
    let out = rewrite_coded(Kind::Hls, Coding::Gzip, limit, &coded, &token, Some(HOST))
        .unwrap_or_else(|why| panic!("hls_media_1000_gzip refused: {why}"));
    let text = Coding::Gzip.decode(&out, limit).expect("a gzip answer");
    assert_eq!(text.len(), body.len() + (SEGMENTS + 2) * (JWT.len() + 5));
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hls_media_1000_gzip", |b| {
        b.iter(|| {
            rewrite_coded(
                Kind::Hls,
                Coding::Gzip,
                limit,
                std::hint::black_box(&coded),
                &token,
                Some(HOST),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
