//! Hostile and degenerate input: huge lines, many URIs, deep nesting,
//! pathological references. Nothing may panic, and nothing may take more
//! than linear time: each case is bounded so that a quadratic walk fails
//! the test instead of hanging it.

use std::time::{Duration, Instant};

use super::*;

/// Far above what the linear rewrite needs even unoptimised, far below what
/// a quadratic walk over these sizes would take.
const BOUND: Duration = Duration::from_secs(5);

fn timed<T>(case: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let spent = start.elapsed();
    assert!(spent < BOUND, "case {case}: {spent:?}");
    out
}

const MIB: usize = 1 << 20;

#[test]
fn one_mib_lines() {
    let long = "a".repeat(MIB);
    let cases: Vec<(&str, String, Result<String, Unchanged>)> = vec![
        (
            "URI line",
            format!("#EXTM3U\n{long}.ts"),
            Ok(expect(&format!("#EXTM3U\n{long}.ts?{{T}}"))),
        ),
        (
            "query of many parameters",
            format!("#EXTM3U\nseg.ts?{}\n", "a=1&".repeat(MIB / 4)),
            Ok(expect(&format!(
                "#EXTM3U\nseg.ts?{}{{T}}\n",
                "a=1&".repeat(MIB / 4)
            ))),
        ),
        (
            "attribute list of many quoted URI= decoys",
            format!(
                "#EXTM3U\n#EXT-X-MEDIA:{}URI=\"m.m3u8\"\n",
                "NAME=\"URI=x,\",".repeat(MIB / 16)
            ),
            Ok(expect(&format!(
                "#EXTM3U\n#EXT-X-MEDIA:{}URI=\"m.m3u8?{{T}}\"\n",
                "NAME=\"URI=x,\",".repeat(MIB / 16)
            ))),
        ),
        (
            "unterminated quoted string",
            format!("#EXTM3U\n#EXT-X-KEY:URI=\"{long}\n"),
            Ok(format!("#EXTM3U\n#EXT-X-KEY:URI=\"{long}\n")),
        ),
        (
            "comment",
            format!("#EXTM3U\n# {long}"),
            Ok(format!("#EXTM3U\n# {long}")),
        ),
        (
            "first line",
            format!("#EXTM3U{long}"),
            Err(Unchanged::NotAPlaylist),
        ),
        (
            "scheme-like URI",
            format!("#EXTM3U\n{long}:x\n"),
            Ok(format!("#EXTM3U\n{long}:x\n")),
        ),
        (
            "blank line",
            format!("#EXTM3U\n{}\n", " ".repeat(MIB)),
            Ok(format!("#EXTM3U\n{}\n", " ".repeat(MIB))),
        ),
    ];
    for (case, body, want) in cases {
        let got = timed(case, || run(Kind::Hls, &body, Some(HOST)));
        assert!(got == want, "case {case}: outputs differ");
    }
}

#[test]
fn many_uris() {
    const N: usize = 100_000;
    let mut hls = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:6\n");
    let mut hls_want = hls.clone();
    let mut mpd =
        String::from("<MPD><Period><AdaptationSet><Representation id=\"v\"><SegmentList>");
    let mut mpd_want = mpd.clone();
    for i in 0..N {
        hls.push_str(&format!("#EXTINF:6.000,\nseg-{i:06}.ts\n"));
        hls_want.push_str(&format!("#EXTINF:6.000,\nseg-{i:06}.ts?{{T}}\n"));
        mpd.push_str(&format!("<SegmentURL media=\"seg-{i:06}.m4s\"/>"));
        mpd_want.push_str(&format!("<SegmentURL media=\"seg-{i:06}.m4s?{{T}}\"/>"));
    }
    let end = "</SegmentList></Representation></AdaptationSet></Period></MPD>";
    mpd.push_str(end);
    mpd_want.push_str(end);
    let got = timed("HLS", || run(Kind::Hls, &hls, Some(HOST)));
    assert!(got == Ok(expect(&hls_want)), "HLS outputs differ");
    let got = timed("DASH", || run(Kind::Dash, &mpd, Some(HOST)));
    assert!(got == Ok(expect(&mpd_want)), "DASH outputs differ");
}

#[test]
fn pathological_xml() {
    const N: usize = 100_000;
    let deep = format!("<MPD>{}{}</MPD>", "<a>".repeat(N), "</a>".repeat(N));
    let deep_base = format!(
        "<MPD>{}<SegmentTemplate media=\"x.m4s\"/>{}</MPD>",
        "<Period><BaseURL>p/</BaseURL>".repeat(N),
        "</Period>".repeat(N)
    );
    let deep_base_want = format!(
        "<MPD>{}<SegmentTemplate media=\"x.m4s?{{T}}\"/>{}</MPD>",
        "<Period><BaseURL>p/?{T}</BaseURL>".repeat(N),
        "</Period>".repeat(N)
    );
    let cases: Vec<(&str, String, Result<String, Unchanged>)> = vec![
        ("deep nesting", deep.clone(), Ok(deep)),
        ("deep BaseURL chain", deep_base, Ok(expect(&deep_base_want))),
        (
            "many references in a URI",
            format!("<MPD><BaseURL>{}</BaseURL></MPD>", "&amp;".repeat(N)),
            Ok(expect(&format!(
                "<MPD><BaseURL>{}?{{T}}</BaseURL></MPD>",
                "&amp;".repeat(N)
            ))),
        ),
        (
            "many attributes",
            format!("<MPD{}/>", " a=\"&#65;\"".repeat(N)),
            Ok(format!("<MPD{}/>", " a=\"&#65;\"".repeat(N))),
        ),
        (
            "long reference name",
            format!("<MPD>&{}</MPD>", "a".repeat(MIB)),
            Err(Unchanged::BadXml),
        ),
        (
            "long unknown entity",
            format!("<MPD>&{};</MPD>", "a".repeat(MIB)),
            Err(Unchanged::UnknownEntity),
        ),
        (
            "long numeric reference",
            format!("<MPD>&#{};</MPD>", "0".repeat(MIB)),
            Err(Unchanged::BadXml),
        ),
        (
            "many open comments",
            format!("<MPD>{}", "<!--".repeat(N)),
            Err(Unchanged::BadXml),
        ),
        (
            "many unclosed tags",
            "<MPD>".repeat(N),
            Err(Unchanged::BadXml),
        ),
        (
            "many lone <",
            format!("<MPD>{}</MPD>", "< ".repeat(N)),
            Err(Unchanged::BadXml),
        ),
        (
            "long text",
            format!("<MPD>{}</MPD>", "x".repeat(MIB)),
            Ok(format!("<MPD>{}</MPD>", "x".repeat(MIB))),
        ),
    ];
    for (case, body, want) in cases {
        let got = timed(case, || run(Kind::Dash, &body, Some(HOST)));
        assert!(got == want, "case {case}: outputs differ");
    }
}
