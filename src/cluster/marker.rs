//! The signed marker a hop between nodes carries instead of the client's
//! token: `v1.<expiry>.<mac>`, the MAC an HMAC-SHA256 under the fleet's
//! secret over the version, the expiry (Unix seconds), the method and the
//! request target as sent. A marker opens one target for a short time; a
//! request on a peer listener without a valid one is refused.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Seconds since the Unix epoch, as markers count time (0 before it).
pub fn unix_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The request field that carries the marker.
pub const HEADER: &str = "cdn-node-hop";
const VERSION: &str = "v1";

/// Why a marker was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Missing,
    Malformed,
    Expired,
    /// Valid until further ahead than a marker is ever made for: not ours.
    TooFarAhead,
    BadSignature,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Missing => "missing",
            Invalid::Malformed => "malformed",
            Invalid::Expired => "expired",
            Invalid::TooFarAhead => "too_far_ahead",
            Invalid::BadSignature => "bad_signature",
        }
    }
}

/// Signs and checks markers with the fleet's secret.
pub struct Marker {
    key: hmac::Key,
    ttl_seconds: u64,
}

impl Marker {
    pub fn new(secret: &[u8], ttl_seconds: u64) -> Marker {
        Marker {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            ttl_seconds,
        }
    }

    fn message(expiry: u64, method: &str, target: &str) -> String {
        format!("{VERSION}\n{expiry}\n{method}\n{target}")
    }

    /// The marker for a request made at `now_unix`.
    pub fn sign(&self, method: &str, target: &str, now_unix: u64) -> String {
        let expiry = now_unix + self.ttl_seconds;
        let tag = hmac::sign(&self.key, Self::message(expiry, method, target).as_bytes());
        format!(
            "{VERSION}.{expiry}.{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks a marker received at `now_unix` for this method and target.
    pub fn verify(
        &self,
        value: Option<&[u8]>,
        method: &str,
        target: &str,
        now_unix: u64,
    ) -> Result<(), Invalid> {
        let value = value.ok_or(Invalid::Missing)?;
        let value = std::str::from_utf8(value).map_err(|_| Invalid::Malformed)?;
        let mut parts = value.split('.');
        let (Some(VERSION), Some(expiry), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::Malformed);
        };
        if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) || expiry.len() > 19 {
            return Err(Invalid::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| Invalid::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| Invalid::Malformed)?;
        hmac::verify(
            &self.key,
            Self::message(expiry, method, target).as_bytes(),
            &mac,
        )
        .map_err(|_| Invalid::BadSignature)?;
        if expiry < now_unix {
            return Err(Invalid::Expired);
        }
        // A little clock skew between nodes is allowed; more is not ours.
        if expiry > now_unix + self.ttl_seconds + 60 {
            return Err(Invalid::TooFarAhead);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    #[test]
    fn markers_open_their_own_target_for_their_time_only() {
        let m = Marker::new(SECRET, 30);
        let good = m.sign("GET", "/v/a.mp4", NOW);
        let other_key = Marker::new(b"another-secret-of-the-right-length!!", 30);
        let forged_expiry = {
            let mut parts: Vec<&str> = good.split('.').collect();
            let later = (NOW + 31).to_string();
            parts[1] = &later;
            parts.join(".")
        };
        let far = Marker::new(SECRET, 100_000).sign("GET", "/v/a.mp4", NOW);
        // (case, marker, method, target, now, verdict)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a str,
            u64,
            Result<(), Invalid>,
        );
        let cases: &[Case] = &[
            ("as made", Some(&good), "GET", "/v/a.mp4", NOW, Ok(())),
            (
                "at its last second",
                Some(&good),
                "GET",
                "/v/a.mp4",
                NOW + 30,
                Ok(()),
            ),
            (
                "after",
                Some(&good),
                "GET",
                "/v/a.mp4",
                NOW + 31,
                Err(Invalid::Expired),
            ),
            (
                "another target",
                Some(&good),
                "GET",
                "/v/b.mp4",
                NOW,
                Err(Invalid::BadSignature),
            ),
            (
                "another method",
                Some(&good),
                "HEAD",
                "/v/a.mp4",
                NOW,
                Err(Invalid::BadSignature),
            ),
            (
                "expiry changed",
                Some(&forged_expiry),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::BadSignature),
            ),
            (
                "too far ahead",
                Some(&far),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::TooFarAhead),
            ),
            ("none", None, "GET", "/v/a.mp4", NOW, Err(Invalid::Missing)),
            (
                "empty",
                Some(""),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
            (
                "v2",
                Some("v2.1.AAAA"),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
            (
                "four parts",
                Some("v1.1.AA.AA"),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
            (
                "signed expiry",
                Some("v1.-1.AAAA"),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
            (
                "huge expiry",
                Some("v1.99999999999999999999.AAAA"),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
            (
                "not base64",
                Some("v1.1.!!"),
                "GET",
                "/v/a.mp4",
                NOW,
                Err(Invalid::Malformed),
            ),
        ];
        for (name, value, method, target, now, want) in cases {
            let got = m.verify(value.map(str::as_bytes), method, target, *now);
            assert_eq!(got, *want, "{name}");
        }
        let by_other = other_key.sign("GET", "/v/a.mp4", NOW);
        assert_eq!(
            m.verify(Some(by_other.as_bytes()), "GET", "/v/a.mp4", NOW),
            Err(Invalid::BadSignature)
        );
    }
}
