//! One access log entry as a JSON line, written by hand straight into the
//! log's buffer: no serializer, and no string built for the time, client or
//! target on the way. The bytes are those `serde_json` gives for the same
//! fields, so parsers of the log see no change.

use std::fmt::{self, Write as _};
use std::net::SocketAddrV4;
use std::time::SystemTime;

use serde_json::ser::{CompactFormatter, Formatter};

use crate::auth::redact::redacted_pieces;
use crate::auth::settings::TokenSource;

use super::time::write_rfc3339;

pub struct Entry<'a> {
    pub time: SystemTime,
    /// The socket address, or the client a trusted proxy named; empty
    /// when unknown.
    pub client: Option<Client<'a>>,
    pub method: &'a str,
    /// The request target as received. Logged as `path`, with the value of
    /// every token parameter of `token_sources` redacted.
    pub target: &'a str,
    pub token_sources: &'a [TokenSource],
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub cache: &'a str,
    pub origin_status: Option<u16>,
    pub origin_ms: Option<f64>,
    pub origin_error: Option<&'a str>,
    pub s3_code: Option<&'a str>,
    pub auth: &'a str,
    pub sub: Option<&'a str>,
}

/// Who sent the request, as the log shows it.
#[derive(Clone, Copy)]
pub enum Client<'a> {
    /// An IPv4 socket address (most clients), written without `fmt`.
    V4(SocketAddrV4),
    /// Anything else, written by its `Display`: IPv6, a client a trusted
    /// proxy named, a Unix socket path.
    Shown(&'a dyn fmt::Display),
}

impl fmt::Display for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::V4(addr) => addr.fmt(f),
            Client::Shown(shown) => shown.fmt(f),
        }
    }
}

impl Entry<'_> {
    /// Appends the entry to `out` as one line, `\n` included.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        write_rfc3339(out, self.time);
        out.extend_from_slice(b"\",\"client\":\"");
        match self.client {
            Some(Client::V4(addr)) => {
                let [a, b, c, d] = addr.ip().octets();
                for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    number(out, u64::from(octet));
                }
                out.push(b':');
                number(out, u64::from(addr.port()));
            }
            // Writing into a Vec fails only if the Display impl does.
            Some(Client::Shown(client)) => {
                let _ = write!(Escaping(out), "{client}");
            }
            None => {}
        }
        out.extend_from_slice(b"\",\"method\":\"");
        escape(out, self.method);
        out.extend_from_slice(b"\",\"path\":\"");
        match self.target.split_once('?') {
            Some((path, query)) => {
                escape(out, path);
                out.push(b'?');
                redacted_pieces(self.token_sources, query, |piece| escape(out, piece));
            }
            None => escape(out, self.target),
        }
        out.extend_from_slice(b"\",\"status\":");
        number(out, u64::from(self.status));
        out.extend_from_slice(b",\"bytes\":");
        number(out, self.bytes);
        out.extend_from_slice(b",\"duration_ms\":");
        float(out, self.duration_ms);
        out.extend_from_slice(b",\"cache\":");
        string(out, self.cache);
        out.extend_from_slice(b",\"origin_status\":");
        match self.origin_status {
            Some(status) => number(out, u64::from(status)),
            None => null(out),
        }
        out.extend_from_slice(b",\"origin_ms\":");
        match self.origin_ms {
            Some(ms) => float(out, ms),
            None => null(out),
        }
        out.extend_from_slice(b",\"origin_error\":");
        optional_string(out, self.origin_error);
        out.extend_from_slice(b",\"s3_code\":");
        optional_string(out, self.s3_code);
        out.extend_from_slice(b",\"auth\":");
        string(out, self.auth);
        out.extend_from_slice(b",\"sub\":");
        optional_string(out, self.sub);
        out.extend_from_slice(b"}\n");
    }
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn number(out: &mut Vec<u8>, n: u64) {
    // The formatter serde_json itself uses; writing into a Vec cannot fail.
    let _ = CompactFormatter.write_u64(out, n);
}

/// Shortest round-trip form, as serde_json writes it (`1.0`, `1e-7`);
/// `null` for what JSON cannot hold.
fn float(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        let _ = CompactFormatter.write_f64(out, x);
    } else {
        null(out);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape(out, s);
    out.push(b'"');
}

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => null(out),
    }
}

/// Lets `Display` output go through [`escape`].
struct Escaping<'o>(&'o mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// For each byte: 0 when it stands as it is in a JSON string, else the
/// letter after the backslash (`u` for `\u00XX`). Bytes of multi-byte
/// UTF-8 characters stand as they are.
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` escaped for the inside of a JSON string. Runs of bytes that
/// need nothing, usually the whole of `s`, are copied at once.
fn escape(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let letter = ESCAPE[usize::from(b)];
        if letter == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if letter == b'u' {
            let (hi, lo) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(&[b'\\', letter]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests;
