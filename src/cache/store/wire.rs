//! A hit's header as HTTP/1 writes it, made once per thread copy so that a
//! hit of a hot object writes bytes instead of cloning, editing and
//! serializing a header map: the status line and the fields before `Age`,
//! then the fields after it. Only the `Age` value and the fields Pingora's
//! HTTP/1 session adds to every answer (`Date`, `Connection`) change from
//! one hit to the next; they are written around the kept bytes exactly
//! where Pingora's serialization puts them.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{AGE, CONNECTION, DATE};
use pingora_http::ResponseHeader;

/// The HTTP/1 form of a prepared hit header (one with `Age`).
#[derive(Debug)]
pub struct Wire {
    /// The status line and the fields before `Age`.
    before_age: Bytes,
    /// `Age` as the header names it.
    age_name: Bytes,
    /// The fields after `Age`.
    after_age: Bytes,
}

impl Wire {
    /// The form of `header`, when its hits can be written from it: an
    /// HTTP/1.1 header with exactly one `Age` field and no `Date` or
    /// `Connection` field (those Pingora replaces in place, so the header
    /// is edited then, not written from kept bytes).
    pub fn of(header: &ResponseHeader) -> Option<Wire> {
        if header.version != http::Version::HTTP_11
            || header.headers.get_all(AGE).iter().count() != 1
            || header.headers.contains_key(DATE)
            || header.headers.contains_key(CONNECTION)
        {
            return None;
        }
        let mut fields = BytesMut::new();
        header.header_to_h1_wire(&mut fields);
        let fields = fields.freeze();
        // Each field is one `name: value\r\n` line; values hold no CR or LF.
        let mut start = 0;
        for line in fields.split_inclusive(|&b| b == b'\n') {
            let end = start + line.len();
            let (name, _) = line.split_at(line.iter().position(|&b| b == b':')?);
            if name.eq_ignore_ascii_case(AGE.as_str().as_bytes()) {
                let mut before = BytesMut::with_capacity(32 + start);
                put_status_line(&mut before, header);
                before.put_slice(&fields[..start]);
                return Some(Wire {
                    before_age: before.freeze(),
                    age_name: fields.slice(start..start + name.len()),
                    after_age: fields.slice(end..),
                });
            }
            start = end;
        }
        None
    }

    /// Appends the whole head to `out`: the kept fields with `Age` set to
    /// `age` seconds, then `Date` and `Connection` as Pingora adds them,
    /// then the empty line.
    pub fn write(&self, out: &mut BytesMut, age: u64, date: &[u8], connection: &str) {
        out.reserve(self.before_age.len() + self.after_age.len() + date.len() + 64);
        out.put_slice(&self.before_age);
        out.put_slice(&self.age_name);
        out.put_slice(b": ");
        put_decimal(out, age);
        out.put_slice(b"\r\n");
        out.put_slice(&self.after_age);
        // Pingora names the fields it adds in title case.
        out.put_slice(b"Date: ");
        out.put_slice(date);
        out.put_slice(b"\r\nConnection: ");
        out.put_slice(connection.as_bytes());
        out.put_slice(b"\r\n\r\n");
    }
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
            (200, &[("age", "0")]),
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
            (200, &[("Age", "0"), ("x-a", "1"), ("x-a", "2")]),
            (203, &[("Cache-Control", "max-age=60"), ("AGE", "0")]),
        ];
        for (status, fields) in cases {
            // As the memory tier prepares a hit's header: `Age` set in its
            // place by the node.
            let mut h = header(*status, fields);
            h.insert_header(AGE, 0).unwrap();
            let wire = Wire::of(&h).expect("a kept head");
            for (age, connection) in [(0, "keep-alive"), (7, "close"), (1_234_567, "keep-alive")] {
                let mut got = BytesMut::new();
                wire.write(&mut got, age, date.as_bytes(), connection);
                let want = pingora_head(&h, age, date, connection);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{fields:?} age {age}"
                );
            }
        }
    }

    #[test]
    fn heads_pingora_edits_in_place_are_not_kept() {
        let cases: &[&[(&str, &str)]] = &[
            &[("content-length", "1")],
            &[("age", "0"), ("age", "1")],
            &[("age", "0"), ("date", "Sun, 06 Dec 2026 14:00:00 GMT")],
            &[("age", "0"), ("connection", "close")],
        ];
        for fields in cases {
            assert!(Wire::of(&header(200, fields)).is_none(), "{fields:?}");
        }
        let mut old = header(200, &[("age", "0")]);
        old.set_version(http::Version::HTTP_10);
        assert!(Wire::of(&old).is_none());
    }
}
