//! RFC 3339 time stamps for log lines. Every line of a second shares its
//! date and time of day, so each thread formats that part once per second
//! and only appends the milliseconds.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS` of one second; `len` 0 until first formatted.
#[derive(Clone, Copy)]
struct Second {
    secs: u64,
    len: u8,
    text: [u8; 32],
}

thread_local! {
    static LAST: Cell<Second> = const {
        Cell::new(Second {
            secs: 0,
            len: 0,
            text: [0; 32],
        })
    };
}

/// RFC 3339 UTC time with milliseconds, e.g. `2026-11-26T01:02:03.456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(&mut out, t);
    // Digits and separators only.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`rfc3339`]`(t)` to `out`.
pub fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    LAST.with(|last| {
        let mut second = last.get();
        if second.len == 0 || second.secs != secs {
            second = format_second(secs);
            last.set(second);
        }
        out.extend_from_slice(&second.text[..usize::from(second.len)]);
    });
    let ms = d.subsec_millis();
    let digit = |n: u32| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'Z']);
}

fn format_second(secs: u64) -> Second {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    let mut text = [0; 32];
    let mut cursor = &mut text[..];
    // The longest, a 12-digit year of the farthest `SystemTime`, fits.
    let _ = write!(
        cursor,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
    let len = 32 - cursor.len();
    Second {
        secs,
        len: len as u8,
        text,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TIMES: &[(u64, u32, &str)] = &[
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (951_782_400, 7, "2000-02-29T00:00:00.007Z"),
        (1_300_819_380, 40, "2011-03-22T18:43:00.040Z"),
        (1_795_740_123, 999, "2026-11-27T00:42:03.999Z"),
        (4_102_444_800, 100, "2100-01-01T00:00:00.100Z"),
        (253_402_300_799, 0, "9999-12-31T23:59:59.000Z"),
        (253_402_300_800, 1, "10000-01-01T00:00:00.001Z"),
    ];

    #[test]
    fn times() {
        for (secs, ms, want) in TIMES {
            let t = UNIX_EPOCH + Duration::from_secs(*secs) + Duration::from_millis(u64::from(*ms));
            assert_eq!(rfc3339(t), *want);
        }
    }

    /// The cached second is used only for its own second, on any order of times.
    #[test]
    fn the_cached_second_follows_the_clock() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(1_795_740_123, 1), "2026-11-27T00:42:03.001Z");
        assert_eq!(at(1_795_740_123, 2), "2026-11-27T00:42:03.002Z");
        assert_eq!(at(1_795_740_124, 0), "2026-11-27T00:42:04.000Z");
        assert_eq!(at(1_795_740_123, 3), "2026-11-27T00:42:03.003Z");
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // Before the epoch counts as the epoch, as it always has.
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
