//! A real browser plays the sample videos through the node: headless
//! Chromium opens the player page (deploy/player/) from another origin
//! than the node's, with the token in the page's query string. The MP4
//! plays in a `<video>` and seeks, even with CORS off (a media load needs
//! none). With the page's origin allowed, the HLS stream plays through its
//! master playlist with hls.js, which gets the token on every playlist and
//! segment from the node's rewritten playlists; without a valid token both
//! players report an error, the page reads the node's 401, and the node
//! logs it. Skipped (with a line on stderr) where Chromium is not
//! installed, failed under CI.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::browser::{Browser, PageServer, chromium_or_skip, player_dir, sample_objects};
use common::token::{good_claims, hs256};
use common::world::World;
use common::{eventually, unix_now};

const MP4: &str = "/courses/101/lecture-01.mp4";
const HLS: &str = "/courses/101/hls/master.m3u8";
/// From opening the page to playback, seeks, errors: generous, for a
/// debug build on a busy machine. Waits end as soon as the state is there.
const WITHIN: Duration = Duration::from_secs(60);

struct Setup {
    world: World,
    page: PageServer,
    browser: Browser,
}

/// Whether the node allows the page's origin (`cors`).
#[derive(PartialEq)]
enum Cors {
    Allowed,
    Off,
}

/// The node with the sample videos (and CORS open to the page's origin, or
/// off), the page server and a browser; `None` when the test is skipped.
async fn setup(cors: Cors) -> Option<Setup> {
    if !chromium_or_skip() {
        return None;
    }
    let page = PageServer::start(player_dir()).await;
    let mut world = World::builder().objects(&sample_objects()).cache("");
    if cors == Cors::Allowed {
        world = world.cors(&[&page.origin()]);
    }
    let world = world.start().await;
    let browser = Browser::start().await;
    Some(Setup {
        world,
        page,
        browser,
    })
}

impl Setup {
    /// The player page for `mp4` and `hls` (paths on the node, or empty)
    /// with `token` (none when empty).
    fn page_url(&self, token: &str, mp4: &str, hls: &str) -> String {
        let mut query = format!("?node=http://{}", self.world.node.http);
        for (name, value) in [("token", token), ("mp4", mp4), ("hls", hls)] {
            if !value.is_empty() {
                query.push_str(&format!("&{name}={value}"));
            }
        }
        self.page.url(&format!("/index.html{query}"))
    }

    /// The node's access log lines, once `done` says they hold what the
    /// test waits for (lines go out at least every second).
    async fn log_lines(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let node = &self.world.node;
        eventually(what, WITHIN, || {
            let lines = node.access_log();
            let ready = done(&lines);
            async move { ready.then_some(lines) }
        })
        .await
    }
}

fn path_of(line: &Value) -> &str {
    line["path"].as_str().unwrap_or("")
}

fn status_of(line: &Value) -> u64 {
    line["status"].as_u64().unwrap_or(0)
}

fn f64_at(state: &Value, pointer: &str) -> f64 {
    state
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// Panics when the player `who` reported an error.
fn no_error(state: &Value, who: &str) {
    assert_eq!(
        state[who]["error"],
        Value::Null,
        "{who} failed; the page's state:\n{state:#}"
    );
    assert_eq!(state[who]["fatal"], false, "{who}: {state:#}");
}

/// The state once the player `who` has played to `at_least` seconds
/// without an error.
async fn played_to(browser: &Browser, who: &str, at_least: f64) -> Value {
    browser
        .wait_for(&format!("{who} to play to {at_least:.2} s"), WITHIN, |s| {
            no_error(s, who);
            let t = f64_at(s, &format!("/{who}/currentTime"));
            (s[who]["playing"] == true && t >= at_least).then(|| s.clone())
        })
        .await
}

#[tokio::test]
async fn the_mp4_plays_and_seeks_to_half_and_nine_tenths_with_cors_off() {
    // A <video src> is a media load, not a script's request: no CORS needed.
    let Some(s) = setup(Cors::Off).await else {
        return;
    };
    let b = &s.browser;
    b.goto(&s.page_url(&s.world.token, MP4, "")).await;

    let state = played_to(b, "mp4", 0.5).await;
    assert_eq!(state["hls"], Value::Null, "no HLS player was asked for");
    let duration = f64_at(&state, "/mp4/duration");
    assert!(
        (7.9..8.1).contains(&duration),
        "the sample is 8 s long: {state:#}"
    );

    for fraction in [0.5, 0.9] {
        let target = duration * fraction;
        let seeks = state_seeks(b).await;
        b.execute(
            "document.getElementById('mp4-video').currentTime = arguments[0];",
            &[json!(target)],
        )
        .await;
        // Playing on from the new position: a quarter second past it.
        b.wait_for(
            &format!("the MP4 to seek to {target:.2} s and play on"),
            WITHIN,
            |st| {
                no_error(st, "mp4");
                let t = f64_at(st, "/mp4/currentTime");
                let done = st["mp4"]["seeks"].as_u64() > Some(seeks);
                (done && t >= target + 0.25).then_some(())
            },
        )
        .await;
    }
    b.screenshot("mp4-seeked.png").await;

    let lines = s
        .log_lines("the MP4's requests in the access log", |lines| {
            lines.iter().any(|l| path_of(l).starts_with(MP4))
        })
        .await;
    for line in &lines {
        assert!(
            path_of(line).starts_with(&format!("{MP4}?jwt=")),
            "a request the page did not make: {line}"
        );
        assert!(
            [200, 206].contains(&status_of(line)),
            "the node did not serve the MP4: {line}"
        );
    }
}

async fn state_seeks(b: &Browser) -> u64 {
    b.player_state().await["mp4"]["seeks"]
        .as_u64()
        .expect("a seek count")
}

#[tokio::test]
async fn the_hls_stream_plays_through_the_master_playlist_with_the_token_on_every_request() {
    let Some(s) = setup(Cors::Allowed).await else {
        return;
    };
    let b = &s.browser;
    b.goto(&s.page_url(&s.world.token, MP4, HLS)).await;

    let state = played_to(b, "hls", 1.0).await;
    assert_eq!(state["hls"]["engine"], "hls.js", "{state:#}");
    let heights: Vec<u64> = state["hls"]["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .filter_map(|l| l["height"].as_u64())
        .collect();
    assert_eq!(heights.len(), 2, "two renditions: {state:#}");
    assert!(
        heights.contains(&360) && heights.contains(&180),
        "{state:#}"
    );
    let fatal: Vec<&Value> = state["hls"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter(|e| e["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "fatal HLS errors: {fatal:?}");
    // Both players on one page, both playing.
    played_to(b, "mp4", 1.0).await;
    let shot = b.screenshot("playing.png").await;
    assert!(shot.is_file());

    // hls.js asked for the master playlist, a variant playlist and
    // segments, each with the token in `jwt` (the access log shows it as
    // REDACTED), and each was served.
    let lines = s
        .log_lines("the stream's requests in the access log", |lines| {
            let has = |suffix: &str| {
                lines
                    .iter()
                    .any(|l| path_of(l).split('?').next().unwrap_or("").ends_with(suffix))
            };
            has("/master.m3u8") && has("p/index.m3u8") && has(".ts")
        })
        .await;
    for line in &lines {
        assert_eq!(line["method"], "GET", "{line}");
        assert!(
            [200, 206].contains(&status_of(line)),
            "a request of the page was not served: {line}"
        );
        let path = path_of(line);
        if path.starts_with("/courses/101/hls/") {
            let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            assert!(
                query.split('&').any(|p| p == "jwt=REDACTED"),
                "hls.js did not send the token in jwt: {line}"
            );
        }
    }
    let segments = lines
        .iter()
        .filter(|l| path_of(l).split('?').next().unwrap_or("").ends_with(".ts"))
        .count();
    assert!(segments >= 1, "no segment was fetched");
}

#[tokio::test]
async fn without_a_token_or_with_an_expired_token_both_players_fail_and_the_node_answers_401() {
    let Some(s) = setup(Cors::Allowed).await else {
        return;
    };
    let b = &s.browser;
    let now = unix_now();
    let mut expired = good_claims("alice");
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let expired = hs256(&expired);

    // What the access log shows of each case's requests.
    let cases = [
        ("no token", "", "", "no-token.png"),
        (
            "an expired token",
            expired.as_str(),
            "?jwt=REDACTED",
            "expired-token.png",
        ),
    ];
    for (case, token, query, shot) in cases {
        b.goto(&s.page_url(token, MP4, HLS)).await;
        let state = b
            .wait_for(&format!("both players to fail with {case}"), WITHIN, |st| {
                (st["mp4"]["fatal"] == true && st["hls"]["fatal"] == true).then(|| st.clone())
            })
            .await;
        for who in ["mp4", "hls"] {
            assert_eq!(state[who]["playing"], false, "{case}: {state:#}");
            // CORS lets the page read the node's answer: 401.
            assert_eq!(state[who]["status"], 401, "{case}, {who}: {state:#}");
        }
        b.screenshot(shot).await;
        let targets = [format!("{MP4}{query}"), format!("{HLS}{query}")];
        s.log_lines(
            &format!("the requests with {case} in the access log"),
            |lines| {
                targets
                    .iter()
                    .all(|t| lines.iter().any(|l| path_of(l) == t))
            },
        )
        .await;
    }

    // Nothing was served: every request of the page, in both cases, was
    // refused with 401, and only the two sources were asked for.
    let lines = s.world.node.access_log();
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        assert_eq!(status_of(line), 401, "{line}");
        let path = path_of(line);
        assert!(
            [MP4, HLS].iter().any(|p| path.starts_with(p)),
            "only the MP4 and the master playlist are asked for: {line}"
        );
        let reason = if path.ends_with("?jwt=REDACTED") {
            "expired"
        } else {
            "missing"
        };
        assert_eq!(line["auth"], reason, "{line}");
    }
}
