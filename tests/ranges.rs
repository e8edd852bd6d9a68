//! Byte ranges through the real node and a real S3-compatible origin:
//! random single, multipart, suffix, open, unsatisfiable and invalid ranges
//! compared byte for byte with the source object, on warm objects, on cold
//! ones and while a fill is still arriving; `If-Range`; HEAD.

mod common;

use std::time::Duration;

use common::bytes;
use common::http::{header, raw};
use common::ranges::{Rng, Spec, check, random_header};
use common::tap::Mode;
use common::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_random_ranges_on_warm_objects_match_the_source() {
    let sizes: [usize; 6] = [0, 1, 2, 100, 70_000, 1024 * 1024 + 3];
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("v/warm-{i}.mp4"), bytes(n, 100 + i as u64)))
        .collect();
    let w = World::builder()
        .objects(&objects)
        .tap()
        .cache("")
        .start()
        .await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (key, object) in &objects {
        let path = format!("/{key}");
        let (status, headers, body) = w.request("GET", &path, &[]).await;
        assert_eq!(status, 200);
        assert!(body == *object);
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        for _ in 0..60 {
            let (range, specs) = random_header(&mut rng, object.len() as u64);
            let answer = get_range(&w, &path, &range).await;
            check(object, &range, specs.as_deref(), &answer);
            assert_eq!(header(&answer.1, "x-cache"), Some("HIT"), "{range}");
        }
    }
    // Per object, the probe GET of its first slice (4 MiB), which brings
    // them whole; the empty one (nothing to probe) costs one ordinary GET
    // more. No more.
    let want: usize = sizes.iter().map(|&n| if n == 0 { 2 } else { 1 }).sum();
    assert_eq!(
        w.tap().requests(),
        want,
        "ranges on hits reached the origin: {:#?}",
        w.tap().heads()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_edge_cases_on_a_warm_object() {
    let object = bytes(1000, 7);
    let w = World::builder()
        .object("v/e.mp4", &object)
        .tap()
        .cache("")
        .start()
        .await;
    assert_eq!(w.request("GET", "/v/e.mp4", &[]).await.0, 200);
    let cases: &[(&str, Option<&[Spec]>)] = &[
        ("bytes=-0", Some(&[Spec::Suffix(0)])),
        ("bytes=1000-", Some(&[Spec::Open(1000)])),
        ("bytes=0-0", Some(&[Spec::Closed(0, 0)])),
        ("bytes=999-", Some(&[Spec::Open(999)])),
        ("bytes=-1", Some(&[Spec::Suffix(1)])),
        ("bytes=-5000", Some(&[Spec::Suffix(5000)])),
        (
            "bytes=0-99999999999",
            Some(&[Spec::Closed(0, 99_999_999_999)]),
        ),
        (
            "bytes=0-99,50-149",
            Some(&[Spec::Closed(0, 99), Spec::Closed(50, 149)]),
        ),
        ("bytes=5-1", None),
        ("bytes=0-1;x", None),
    ];
    for (range, specs) in cases {
        let answer = get_range(&w, "/v/e.mp4", range).await;
        check(&object, range, *specs, &answer);
    }
    // Overlaps never amplify: a thousand copies of the whole object are
    // one copy.
    let many = vec!["0-"; 90].join(",");
    let (status, headers, body) = get_range(&w, "/v/e.mp4", &format!("bytes={many}")).await;
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), Some("bytes 0-999/1000"));
    assert!(body == object);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_length_object_never_breaks_a_suffix_range() {
    let w = World::builder()
        .object("v/empty.mp4", b"")
        .tap()
        .cache("")
        .start()
        .await;
    assert_eq!(w.request("GET", "/v/empty.mp4", &[]).await.0, 200);
    let (status, headers, body) = get_range(&w, "/v/empty.mp4", "bytes=-10").await;
    assert_eq!(status, 200, "{headers:?}");
    assert!(body.is_empty());
    let (status, headers, _) = get_range(&w, "/v/empty.mp4", "bytes=-0").await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */0"));
    let (status, headers, _) = get_range(&w, "/v/empty.mp4", "bytes=0-").await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_ranges_are_answered_with_exactly_their_bytes() {
    let object = bytes(3 * 1024 * 1024 + 11, 8);
    let cases: &[(&str, Option<&[Spec]>)] = &[
        (
            "bytes=2000000-2100000",
            Some(&[Spec::Closed(2_000_000, 2_100_000)]),
        ),
        ("bytes=3000000-", Some(&[Spec::Open(3_000_000)])),
        ("bytes=-70000", Some(&[Spec::Suffix(70_000)])),
        (
            "bytes=10-20,1000000-1000100,-5",
            Some(&[
                Spec::Closed(10, 20),
                Spec::Closed(1_000_000, 1_000_100),
                Spec::Suffix(5),
            ]),
        ),
        ("bytes=9999999-", Some(&[Spec::Open(9_999_999)])),
        ("bytes=-0", Some(&[Spec::Suffix(0)])),
    ];
    let keys: Vec<String> = (0..cases.len())
        .map(|i| format!("v/cold-{i}.mp4"))
        .collect();
    let refs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &object[..])).collect();
    let w = World::builder()
        .objects(&refs)
        .tap()
        .cache("")
        .start()
        .await;
    for (key, (range, specs)) in keys.iter().zip(cases) {
        let answer = get_range(&w, &format!("/{key}"), range).await;
        assert_eq!(header(&answer.1, "x-cache"), Some("MISS"), "{range}");
        check(&object, range, *specs, &answer);
    }
    // The fills completed: every object is now a hit with the whole body.
    for key in &keys {
        let (status, headers, body) = w.request("GET", &format!("/{key}"), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-cache"), Some("HIT"));
        assert!(body == object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_during_a_fill_are_served_from_it() {
    let object = bytes(4 * 1024 * 1024, 9);
    let w = World::builder()
        .object("v/fill.mp4", &object)
        .tap()
        .cache("")
        .start()
        .await;
    let held = 1024 * 1024;
    w.tap().set_mode(Mode::HoldAfter(held));
    let url = w.url("/v/fill.mp4");
    let filler = tokio::spawn(async move {
        let resp = reqwest::get(url).await.expect("filler");
        resp.bytes().await.expect("filler body")
    });
    common::eventually("the fill to be under way", Duration::from_secs(10), || {
        let passed = w.tap().response_bytes();
        async move { (passed >= held).then_some(()) }
    })
    .await;
    // Bytes already on disk are served while the origin holds the rest.
    let mut rng = Rng(42);
    for _ in 0..40 {
        let a = rng.below(held / 2);
        let b = a + rng.below(held / 4);
        let range = format!("bytes={a}-{b}");
        let answer = get_range(&w, "/v/fill.mp4", &range).await;
        check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    }
    let range = "bytes=100-200,300000-300100";
    let answer = get_range(&w, "/v/fill.mp4", range).await;
    check(
        &object,
        range,
        Some(&[Spec::Closed(100, 200), Spec::Closed(300_000, 300_100)]),
        &answer,
    );
    // A range beyond what arrived waits for it.
    let node = w.node.http;
    let target = w.target("/v/fill.mp4");
    let late = tokio::spawn(async move {
        raw(
            node,
            "GET",
            &target,
            &[("range", "bytes=3000000-3500000,-100")],
        )
        .await
    });
    w.tap().set_mode(Mode::Forward);
    let answer = late.await.unwrap();
    check(
        &object,
        "late",
        Some(&[Spec::Closed(3_000_000, 3_500_000), Spec::Suffix(100)]),
        &answer,
    );
    assert!(filler.await.unwrap()[..] == object[..]);
    // The probe GET that learnt the object is its one fill.
    assert_eq!(w.tap().requests(), 1, "{:#?}", w.tap().heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_matches_the_etag_or_the_date_exactly() {
    let object = bytes(10_000, 10);
    let w = World::builder()
        .object("v/ir.mp4", &object)
        .tap()
        .cache("")
        .start()
        .await;
    let (_, headers, _) = w.request("GET", "/v/ir.mp4", &[]).await;
    let etag = header(&headers, "etag").expect("etag").to_string();
    let modified = header(&headers, "last-modified")
        .expect("last-modified")
        .to_string();
    let good: &[&str] = &[&etag, &modified];
    for ir in good {
        let (status, h, body) = w
            .request(
                "GET",
                "/v/ir.mp4",
                &[("range", "bytes=10-19"), ("if-range", ir)],
            )
            .await;
        assert_eq!(status, 206, "If-Range {ir}");
        assert_eq!(header(&h, "content-range"), Some("bytes 10-19/10000"));
        assert!(body[..] == object[10..20]);
    }
    let weak = format!("W/{etag}");
    let bad: &[&str] = &[
        "\"other\"",
        &weak,
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "garbage",
    ];
    for ir in bad {
        let (status, _, body) = w
            .request(
                "GET",
                "/v/ir.mp4",
                &[("range", "bytes=10-19"), ("if-range", ir)],
            )
            .await;
        assert_eq!(status, 200, "If-Range {ir}");
        assert!(body == object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_with_the_full_headers_and_no_body() {
    let object = bytes(123_456, 11);
    let w = World::builder()
        .object("v/h.mp4", &object)
        .tap()
        .cache("")
        .start()
        .await;
    for (expect_cache, extra) in [
        ("MISS", &[][..]),
        ("HIT", &[][..]),
        ("HIT", &[("range", "bytes=0-9")][..]),
    ] {
        let (status, headers, body) = w.request("HEAD", "/v/h.mp4", extra).await;
        assert_eq!(status, 200, "{extra:?}");
        assert_eq!(header(&headers, "content-length"), Some("123456"));
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&headers, "x-cache"), Some(expect_cache));
        assert!(header(&headers, "content-range").is_none());
        assert!(body.is_empty());
    }
}

/// GET `path` with a `Range` header.
async fn get_range(w: &World, path: &str, range: &str) -> (u16, common::http::Headers, Vec<u8>) {
    w.request("GET", path, &[("range", range)]).await
}
