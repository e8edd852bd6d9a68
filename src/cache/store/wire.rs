//! A hit's header as HTTP/1 writes it, made once per thread copy so that a
//! hit of a hot object writes bytes instead of cloning, editing and
//! serializing a header map. Only three fields change from one hit to the
//! next: `Age` (set by the node), `Date` and `Connection` (set by Pingora's
//! HTTP/1 session). Each is set as Pingora sets it: in the place of the
//! stored field when there is one (its name then in title case, as an
//! insert with a standard name writes it), else after the stored fields;
//! the kept bytes are the lines between them.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{AGE, CONNECTION, CONTENT_LENGTH, DATE, ETAG, HeaderName};
use pingora_http::ResponseHeader;

/// The HTTP/1 form of a prepared hit header (one with `Age`).
#[derive(Debug)]
pub struct Wire {
    /// The status line and the stored fields, in order, with a slot where
    /// a changing field goes.
    parts: Vec<Part>,
    /// Whether the stored fields hold a `Date` and a `Connection` (set in
    /// their places) or not (added at the end).
    date_kept: bool,
    connection_kept: bool,
    len: usize,
}

#[derive(Debug)]
enum Part {
    Kept(Bytes),
    Age,
    Date,
    Connection,
    /// The stored `Content-Length` line: kept, or set for a rewritten body.
    ContentLength(Bytes),
    /// The stored `ETag` line and value: kept, or weakened for a rewritten
    /// body.
    ETag(Bytes, Bytes),
}

/// How a rewritten body (a playlist given the token) changes the kept
/// header, as the `Manifest` route changes it: its length, and a strong
/// `ETag` made weak.
#[derive(Debug, Clone, Copy)]
pub struct Rewritten {
    pub len: usize,
    pub weaken_etag: bool,
}

impl Wire {
    /// The form of `header`, when its hits can be written from it: an
    /// HTTP/1.1 header with exactly one `Age` field and at most one `Date`
    /// and one `Connection` (several values of one of those Pingora would
    /// fold into the first place: such a header is edited instead).
    pub fn of(header: &ResponseHeader) -> Option<Wire> {
        let count = |name: &HeaderName| header.headers.get_all(name).iter().count();
        if header.version != http::Version::HTTP_11
            || count(&AGE) != 1
            || count(&DATE) > 1
            || count(&CONNECTION) > 1
            || count(&CONTENT_LENGTH) != 1
            || count(&ETAG) > 1
        {
            return None;
        }
        let mut fields = BytesMut::new();
        put_status_line(&mut fields, header);
        let status_len = fields.len();
        header.header_to_h1_wire(&mut fields);
        let fields = fields.freeze();
        let mut parts = Vec::new();
        let mut kept_from = 0;
        let mut start = status_len;
        // Each field is one `name: value\r\n` line; values hold no CR or LF.
        for line in fields[status_len..].split_inclusive(|&b| b == b'\n') {
            let end = start + line.len();
            let name = &line[..line.iter().position(|&b| b == b':')?];
            let is = |field: &HeaderName| name.eq_ignore_ascii_case(field.as_str().as_bytes());
            let slot = if is(&AGE) {
                Some(Part::Age)
            } else if is(&DATE) {
                Some(Part::Date)
            } else if is(&CONNECTION) {
                Some(Part::Connection)
            } else if is(&CONTENT_LENGTH) {
                Some(Part::ContentLength(fields.slice(start..end)))
            } else if is(&ETAG) {
                // `name: value\r\n`, as `header_to_h1_wire` writes it.
                let value = fields.slice(start + name.len() + 2..end - 2);
                Some(Part::ETag(fields.slice(start..end), value))
            } else {
                None
            };
            if let Some(slot) = slot {
                parts.push(Part::Kept(fields.slice(kept_from..start)));
                parts.push(slot);
                kept_from = end;
            }
            start = end;
        }
        parts.push(Part::Kept(fields.slice(kept_from..)));
        Some(Wire {
            date_kept: count(&DATE) == 1,
            connection_kept: count(&CONNECTION) == 1,
            len: fields.len(),
            parts,
        })
    }

    /// Appends the whole head to `out`: the kept fields with `Age` set to
    /// `age` seconds, `Date` and `Connection` as Pingora sets them, the
    /// length and `ETag` of a body rewritten as `rewritten` says, then the
    /// empty line.
    pub fn write(
        &self,
        out: &mut BytesMut,
        age: u64,
        date: &[u8],
        connection: &str,
        rewritten: Option<Rewritten>,
    ) {
        out.reserve(self.len + date.len() + 64);
        for part in &self.parts {
            match (part, rewritten) {
                (Part::Kept(bytes), _) => out.put_slice(bytes),
                (Part::Age, _) => put_age(out, age),
                (Part::Date, _) => put_field(out, b"Date", date),
                (Part::Connection, _) => put_field(out, b"Connection", connection.as_bytes()),
                (Part::ContentLength(line), None) => out.put_slice(line),
                (Part::ContentLength(_), Some(r)) => {
                    out.put_slice(b"Content-Length: ");
                    put_decimal(out, r.len as u64);
                    out.put_slice(b"\r\n");
                }
                (Part::ETag(line, value), r) => match r {
                    // Pingora's insert names it as `ETAG` is spelt.
                    Some(r) if r.weaken_etag && weakened(value) => {
                        out.put_slice(b"etag: W/");
                        out.put_slice(value);
                        out.put_slice(b"\r\n");
                    }
                    _ => out.put_slice(line),
                },
            }
        }
        if !self.date_kept {
            put_field(out, b"Date", date);
        }
        if !self.connection_kept {
            put_field(out, b"Connection", connection.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
}

/// Whether the `Manifest` route weakens this `ETag` value (a strong one,
/// text).
fn weakened(value: &[u8]) -> bool {
    // `HeaderValue::to_str`'s test: visible ASCII or tab.
    let text = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    text && !value.starts_with(b"W/")
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

fn put_age(out: &mut BytesMut, age: u64) {
    out.put_slice(b"Age: ");
    put_decimal(out, age);
    out.put_slice(b"\r\n");
}

/// `HTTP/1.1 <code> <reason>\r\n`, as Pingora's HTTP/1 session writes it.
pub fn put_status_line(out: &mut BytesMut, header: &ResponseHeader) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(header.status.as_str().as_bytes());
    out.put_u8(b' ');
    if let Some(reason) = header.get_reason_phrase() {
        out.put_slice(reason.as_bytes());
    }
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head Pingora writes for `header` answered with `Age: age`.
    fn pingora_head(header: &ResponseHeader, age: u64, date: &str, connection: &str) -> Vec<u8> {
        let mut h = header.clone();
        h.insert_header(AGE, age).unwrap();
        h.insert_header(DATE, date).unwrap();
        h.insert_header(CONNECTION, connection).unwrap();
        let mut out = BytesMut::new();
        put_status_line(&mut out, &h);
        h.header_to_h1_wire(&mut out);
        out.put_slice(b"\r\n");
        out.to_vec()
    }

    fn header(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            h.append_header(name.to_string(), *value).unwrap();
        }
        h
    }

    #[test]
    fn a_kept_head_is_the_head_pingora_writes() {
        let date = "Sun, 06 Dec 2026 14:00:00 GMT";
        let cases: &[(u16, &[(&str, &str)])] = &[
            (200, &[("age", "0"), ("content-length", "0")]),
            (
                200,
                &[
                    ("Content-Type", "video/mp4"),
                    ("Content-Length", "1024"),
                    ("ETag", "\"abc\""),
                    ("age", "0"),
                    ("Accept-Ranges", "bytes"),
                    ("X-Cache", "HIT"),
                ],
            ),
            // Age first and last, a repeated field, the origin's casing.
            (
                200,
                &[
                    ("Age", "0"),
                    ("x-a", "1"),
                    ("x-a", "2"),
                    ("Content-Length", "0"),
                ],
            ),
            (
                203,
                &[
                    ("Cache-Control", "max-age=60"),
                    ("AGE", "0"),
                    ("content-length", "1"),
                ],
            ),
            // A stored Date (S3 sends one) and Connection: set in their places.
            (
                200,
                &[
                    ("x-amz-request-id", "1"),
                    ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
                    ("Content-Length", "5"),
                    ("Connection", "close"),
                    ("ETag", "\"e\""),
                ],
            ),
            (
                200,
                &[
                    ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
                    ("content-length", "1"),
                ],
            ),
        ];
        for (status, fields) in cases {
            // As the memory tier prepares a hit's header: `Age` set in its
            // place by the node.
            let mut h = header(*status, fields);
            h.insert_header(AGE, 0).unwrap();
            let wire = Wire::of(&h).expect("a kept head");
            for (age, connection) in [(0, "keep-alive"), (7, "close"), (1_234_567, "keep-alive")] {
                let mut got = BytesMut::new();
                wire.write(&mut got, age, date.as_bytes(), connection, None);
                let want = pingora_head(&h, age, date, connection);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{fields:?} age {age}"
                );
            }
        }
    }

    /// The head Pingora writes for a playlist answer: the `Manifest`
    /// route's edits (a strong ETag made weak, the rewritten length), then
    /// Pingora's fields.
    fn pingora_rewritten_head(
        header: &ResponseHeader,
        age: u64,
        date: &str,
        len: usize,
    ) -> Vec<u8> {
        let mut h = header.clone();
        h.insert_header(AGE, age).unwrap();
        let weak = match h.headers.get(ETAG).and_then(|v| v.to_str().ok()) {
            Some(tag) if !tag.starts_with("W/") => Some(format!("W/{tag}")),
            _ => None,
        };
        if let Some(weak) = weak {
            h.insert_header(ETAG, weak).unwrap();
        }
        h.insert_header(CONTENT_LENGTH, len).unwrap();
        h.insert_header(DATE, date).unwrap();
        h.insert_header(CONNECTION, "keep-alive").unwrap();
        let mut out = BytesMut::new();
        put_status_line(&mut out, &h);
        h.header_to_h1_wire(&mut out);
        out.put_slice(b"\r\n");
        out.to_vec()
    }

    #[test]
    fn a_kept_head_of_a_rewritten_playlist_is_the_head_pingora_writes() {
        let date = "Sun, 06 Dec 2026 14:00:00 GMT";
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("Content-Type", "application/vnd.apple.mpegurl"),
                ("content-length", "120"),
                ("ETag", "\"abc\""),
                ("x-cache", "HIT"),
            ],
            &[("ETag", "W/\"weak\""), ("Content-Length", "9")],
            &[
                ("content-length", "9"),
                ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ],
        ];
        for fields in cases {
            let mut h = header(200, fields);
            h.insert_header(AGE, 0).unwrap();
            let wire = Wire::of(&h).expect("a kept head");
            for len in [1, 4_567] {
                let mut got = BytesMut::new();
                let rewritten = Rewritten {
                    len,
                    weaken_etag: true,
                };
                wire.write(&mut got, 3, date.as_bytes(), "keep-alive", Some(rewritten));
                let want = pingora_rewritten_head(&h, 3, date, len);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{fields:?} len {len}"
                );
            }
        }
    }

    #[test]
    fn heads_pingora_edits_in_place_are_not_kept() {
        let cases: &[&[(&str, &str)]] = &[
            &[("content-length", "1")],
            &[("age", "0")],
            &[("age", "0"), ("age", "1"), ("content-length", "1")],
            &[
                ("age", "0"),
                ("content-length", "1"),
                ("etag", "a"),
                ("etag", "b"),
            ],
            &[
                ("age", "0"),
                ("content-length", "1"),
                ("date", "a"),
                ("date", "b"),
            ],
            &[
                ("age", "0"),
                ("content-length", "1"),
                ("connection", "close"),
                ("connection", "te"),
            ],
        ];
        for fields in cases {
            assert!(Wire::of(&header(200, fields)).is_none(), "{fields:?}");
        }
        let mut old = header(200, &[("age", "0"), ("content-length", "1")]);
        old.set_version(http::Version::HTTP_10);
        assert!(Wire::of(&old).is_none());
    }
}
