//! The query: parsed into pairs, written in canonical form.
//!
//! Checks: the canonical query is ASCII, parses back to itself, does not
//! depend on the order of the pairs, and never forwards an S3 override
//! (`response-*`) or presign (`X-Amz-*`) parameter.

#![no_main]

use cdn_node::fuzzing::request::{canonical, is_forbidden, parse};
use libfuzzer_sys::fuzz_target;

fn keep_all(_: &str) -> bool {
    true
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = parse(raw) else {
        return;
    };
    let out = canonical(&pairs, keep_all);
    assert!(out.is_ascii(), "{out:?}");
    let again = parse(&out).expect("a canonical query parses");
    assert_eq!(canonical(&again, keep_all), out, "not a fixed point");
    for (name, _) in &again {
        assert!(!is_forbidden(name), "{name:?} forwarded");
    }
    let mut reversed = pairs.clone();
    reversed.reverse();
    assert_eq!(canonical(&reversed, keep_all), out, "order matters");
    // An allow-list keeps a subset, in the same order.
    let some = canonical(&pairs, |name| name.len() % 2 == 0);
    let kept = parse(&some).expect("a canonical query parses");
    assert!(kept.iter().all(|p| again.contains(p)));
});
