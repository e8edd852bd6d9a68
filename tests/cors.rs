//! CORS with the real node: preflights answered by the node itself (never
//! sent to S3, never cached), and the CORS fields on every answer to an
//! allowed origin, whatever route wrote it, while the cached object stays
//! one for every origin.

mod common;

use common::bytes;
use common::http::{Headers, header, raw};
use common::world::World;

const VIDEO: &str = "courses/101/lecture-01.mp4";
const PAGE: &str = "http://portal.school.test:8123";
const OTHER_PAGE: &str = "https://a.courses.test";
const STRANGER: &str = "https://evil.test";

fn cors_yaml(extra: &str) -> String {
    format!("cors:\n  allowed_origins: [\"{PAGE}\", \"https://*.courses.test\"]\n{extra}")
}

async fn world(cors: &str) -> World {
    let yaml = cors.to_string();
    World::builder()
        .object(VIDEO, &bytes(300_000, 3))
        .tap()
        .cache("")
        .configure(move |o| o.extra_yaml.push_str(&yaml))
        .start()
        .await
}

fn preflight_fields(origin: &str, method: &str, asked: Option<&str>) -> Vec<(String, String)> {
    let mut f = vec![
        ("origin".to_string(), origin.to_string()),
        (
            "access-control-request-method".to_string(),
            method.to_string(),
        ),
    ];
    if let Some(asked) = asked {
        f.push(("access-control-request-headers".into(), asked.into()));
    }
    f
}

async fn preflight(w: &World, origin: &str, method: &str, asked: Option<&str>) -> (u16, Headers) {
    let fields = preflight_fields(origin, method, asked);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    // No token: a browser never sends one with a preflight.
    let (status, headers, _) = raw(w.node.http, "OPTIONS", &format!("/{VIDEO}"), &refs).await;
    (status, headers)
}

#[tokio::test]
async fn preflights_are_answered_by_the_node_without_a_token() {
    let w = world(&cors_yaml("  max_age_seconds: 120\n")).await;
    let (status, h) = preflight(&w, PAGE, "GET", Some("Range, Authorization")).await;
    assert_eq!(status, 204);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(PAGE));
    assert_eq!(
        header(&h, "access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert_eq!(
        header(&h, "access-control-allow-headers"),
        Some("range, authorization")
    );
    assert_eq!(header(&h, "access-control-max-age"), Some("120"));
    assert_eq!(header(&h, "access-control-allow-credentials"), None);

    let (status, h) = preflight(&w, "https://x.y.courses.test", "HEAD", None).await;
    assert_eq!(status, 204, "a subdomain of the pattern");
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        Some("https://x.y.courses.test")
    );

    for (origin, method, asked, outcome) in [
        (STRANGER, "GET", None, "origin"),
        ("https://courses.test", "GET", None, "origin"),
        (PAGE, "DELETE", None, "method"),
        (PAGE, "GET", Some("x-forwarded-for"), "headers"),
    ] {
        let (status, h) = preflight(&w, origin, method, asked).await;
        assert_eq!(status, 403, "{origin} {method} {asked:?}");
        assert_eq!(header(&h, "access-control-allow-origin"), None);
        let refused = w
            .metric("cdn_node_cors_preflights_total", &[("outcome", outcome)])
            .await;
        assert!(refused >= 1.0, "{outcome} counted");
    }
    assert_eq!(
        w.metric("cdn_node_cors_preflights_total", &[("outcome", "answered")])
            .await,
        2.0
    );
    assert_eq!(w.tap().requests(), 0, "no preflight reaches the origin");
    let stored = w.metric("cdn_node_cache_stored_objects", &[]).await;
    assert_eq!(stored, 0.0, "nothing is cached");
}

#[tokio::test]
async fn without_cors_an_options_request_is_refused_as_before() {
    let w = world("").await;
    let (status, h) = preflight(&w, PAGE, "GET", None).await;
    assert_eq!(status, 405);
    assert_eq!(header(&h, "allow"), Some("GET, HEAD"));
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    // And no answer carries CORS fields.
    let (status, h, _) = w
        .request("GET", &format!("/{VIDEO}"), &[("origin", PAGE)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), None);
}

fn assert_cors(h: &Headers, origin: &str, what: &str) {
    assert_eq!(
        header(h, "access-control-allow-origin"),
        Some(origin),
        "{what}"
    );
    let vary: Vec<&str> = h
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(vary.contains(&"Origin"), "{what}: Vary {vary:?}");
    let exposed = header(h, "access-control-expose-headers").unwrap_or_default();
    for name in ["content-range", "content-length", "accept-ranges", "etag"] {
        assert!(
            exposed.contains(name),
            "{what}: {name} exposed in {exposed:?}"
        );
    }
}

#[tokio::test]
async fn every_answer_to_an_allowed_origin_carries_the_fields() {
    let w = world(&cors_yaml("")).await;
    let path = format!("/{VIDEO}");
    let o = ("origin", PAGE);

    let (status, h, body) = w.request("GET", &path, &[o]).await;
    assert_eq!((status, body.len()), (200, 300_000));
    assert_cors(&h, PAGE, "miss");
    let etag = header(&h, "etag").expect("an etag").to_string();

    let (status, h, _) = w.request("GET", &path, &[o]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), Some("HIT"));
    assert_cors(&h, PAGE, "hit");

    let (status, h, body) = w
        .request("GET", &path, &[o, ("range", "bytes=100-199")])
        .await;
    assert_eq!((status, body.len()), (206, 100));
    assert_cors(&h, PAGE, "206");

    let (status, h, _) = w
        .request("GET", &path, &[o, ("if-none-match", etag.as_str())])
        .await;
    assert_eq!(status, 304);
    assert_cors(&h, PAGE, "304");

    let (status, h, _) = w
        .request("GET", &path, &[o, ("range", "bytes=999999-")])
        .await;
    assert_eq!(status, 416);
    assert_cors(&h, PAGE, "416");

    let (status, h, _) = w.request("GET", "/courses/101/missing.mp4", &[o]).await;
    assert_eq!(status, 404);
    assert_cors(&h, PAGE, "404");

    // A refusal: readable by the page, so a player can tell "log in again".
    let (status, h, _) = raw(w.node.http, "GET", &path, &[o]).await;
    assert_eq!(status, 401);
    assert_cors(&h, PAGE, "401");

    let (status, h, _) = w.request("HEAD", &path, &[("origin", OTHER_PAGE)]).await;
    assert_eq!(status, 200);
    assert_cors(&h, OTHER_PAGE, "wildcard");
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_fields_and_the_object_stays_one() {
    let w = world(&cors_yaml("  allow_credentials: true\n")).await;
    let path = format!("/{VIDEO}");

    let (status, h, body) = w.request("GET", &path, &[("origin", STRANGER)]).await;
    assert_eq!((status, body.len()), (200, 300_000));
    for (name, _) in &h {
        assert!(
            !name.to_ascii_lowercase().starts_with("access-control-"),
            "no CORS field for a stranger: {name}"
        );
    }
    let fetched = w.tap().origin_requests();

    // The same stored object answers the allowed page (a hit, with its
    // fields and credentials) and a request without Origin (no fields).
    let (status, h, body2) = w.request("GET", &path, &[("origin", PAGE)]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), Some("HIT"));
    assert_eq!(body2, body);
    assert_cors(&h, PAGE, "credentials");
    assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));

    let (status, h, _) = w.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), Some("HIT"));
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    assert_eq!(
        w.tap().origin_requests(),
        fetched,
        "one stored object whatever the Origin"
    );
}

#[tokio::test]
async fn a_bad_origin_in_the_configuration_is_named() {
    let out = World::builder()
        .configure(|o| {
            o.extra_yaml
                .push_str("cors:\n  allowed_origins: [\"https://ok.test\", \"ok.test/player\"]\n")
        })
        .check();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cors.allowed_origins[1]") && text.contains("scheme://host"),
        "{text}"
    );
}
