//! Whether a connection is in the middle of receiving a request header,
//! followed from the bytes it reads (and, for HTTP/1, the fact that a
//! response was written). Pure state: the deadline itself is kept by the
//! stream wrapper.
//!
//! - HTTP/1.x: a header runs from the connection's start, or from the first
//!   byte after a response was written, to the first empty line. Empty lines
//!   before the request line do not end it.
//! - HTTP/2: a header block runs from the connection's start to the end of
//!   the first HEADERS(+CONTINUATION) block, then from the first byte of
//!   each later HEADERS frame to the end of its block (RFC 9113 §4.3: a
//!   block is contiguous, no other frame comes in between).

const H2_PREFACE_LEN: usize = 24;
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

#[derive(Debug, Clone)]
pub struct HeaderWatch {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    H1 {
        /// Inside a request header.
        waiting: bool,
        /// A response was written: the next byte starts a request.
        responded: bool,
        /// A non-empty line was seen in this header.
        text: bool,
        /// The last byte other than CR was LF.
        newline: bool,
    },
    H2 {
        preface_left: usize,
        head: [u8; 9],
        head_len: usize,
        payload_left: usize,
        /// The frame being read is the last of its header block.
        ends_block: bool,
        /// Inside a header block (or before the first one).
        waiting: bool,
    },
}

impl HeaderWatch {
    /// HTTP/1.x: waiting for the first request header from the start.
    pub fn h1() -> Self {
        HeaderWatch {
            kind: Kind::H1 {
                waiting: true,
                responded: false,
                text: false,
                newline: false,
            },
        }
    }

    /// HTTP/2 (after ALPN): waiting for the preface and the first header
    /// block from the start.
    pub fn h2() -> Self {
        HeaderWatch {
            kind: Kind::H2 {
                preface_left: H2_PREFACE_LEN,
                head: [0; 9],
                head_len: 0,
                payload_left: 0,
                ends_block: false,
                waiting: true,
            },
        }
    }

    /// Inside a request header now.
    pub fn waiting(&self) -> bool {
        match self.kind {
            Kind::H1 { waiting, .. } | Kind::H2 { waiting, .. } => waiting,
        }
    }

    /// A response (or part of one) was written.
    pub fn wrote(&mut self) {
        if let Kind::H1 {
            waiting, responded, ..
        } = &mut self.kind
            && !*waiting
        {
            *responded = true;
        }
    }

    /// Follows bytes read; true when a new header began among them (its
    /// deadline starts now, even if an earlier one ended in the same bytes).
    pub fn read(&mut self, bytes: &[u8]) -> bool {
        let mut began = false;
        match &mut self.kind {
            Kind::H1 {
                waiting,
                responded,
                text,
                newline,
            } => {
                if !*waiting && !*responded {
                    // After a header's end and before a response: body or
                    // pipelined bytes, which start nothing.
                    return false;
                }
                if h1_whole_header(bytes) {
                    // Whatever state the header was in, it has ended by the
                    // last byte (and a new one began at the first, after a
                    // response). Saves the byte loop on nearly every read.
                    began = *responded;
                    *responded = false;
                    *waiting = false;
                    return began;
                }
                for &b in bytes {
                    if *responded {
                        *responded = false;
                        *waiting = true;
                        *text = false;
                        *newline = false;
                        began = true;
                    }
                    if !*waiting {
                        continue;
                    }
                    match b {
                        b'\n' if *text && *newline => *waiting = false,
                        b'\n' => *newline = true,
                        b'\r' => {}
                        _ => {
                            *text = true;
                            *newline = false;
                        }
                    }
                }
            }
            Kind::H2 {
                preface_left,
                head,
                head_len,
                payload_left,
                ends_block,
                waiting,
            } => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    if *preface_left > 0 {
                        let n = (*preface_left).min(rest.len());
                        *preface_left -= n;
                        rest = &rest[n..];
                        continue;
                    }
                    if *payload_left > 0 {
                        let n = (*payload_left).min(rest.len());
                        *payload_left -= n;
                        rest = &rest[n..];
                        if *payload_left == 0 && *ends_block {
                            *waiting = false;
                            *ends_block = false;
                        }
                        continue;
                    }
                    head[*head_len] = rest[0];
                    *head_len += 1;
                    rest = &rest[1..];
                    if *head_len < head.len() {
                        continue;
                    }
                    *head_len = 0;
                    let len = usize::from(head[0]) << 16
                        | usize::from(head[1]) << 8
                        | usize::from(head[2]);
                    let (kind, flags) = (head[3], head[4]);
                    *ends_block = false;
                    if kind == H2_HEADERS || kind == H2_CONTINUATION {
                        if !*waiting {
                            *waiting = true;
                            began = true;
                        }
                        *ends_block = flags & H2_END_HEADERS != 0;
                    }
                    *payload_left = len;
                    if len == 0 && *ends_block {
                        *waiting = false;
                        *ends_block = false;
                    }
                }
            }
        }
        began
    }
}

/// Bytes that start with a request-line character and end with an empty
/// line (LF, an optional CR, LF): fed to a header waited for, or to the
/// start of one, they end it. The first byte sets `text`, which nothing in
/// a header clears, and the final line ends are an empty line after it.
fn h1_whole_header(bytes: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if first == b'\r' || first == b'\n' || last != b'\n' || bytes.len() < 3 {
        return false;
    }
    let n = bytes.len();
    bytes[n - 2] == b'\n' || (bytes[n - 2] == b'\r' && bytes[n - 3] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `steps` (`r:` read bytes, `w` a write) and returns, after each
    /// step, whether a header is being waited for, and whether one began.
    fn run(mut watch: HeaderWatch, steps: &[&[u8]]) -> Vec<(bool, bool)> {
        steps
            .iter()
            .map(|s| {
                if *s == b"<write>" {
                    watch.wrote();
                    (watch.waiting(), false)
                } else {
                    let began = watch.read(s);
                    (watch.waiting(), began)
                }
            })
            .collect()
    }

    #[test]
    fn http1() {
        type Case<'a> = (&'a [&'a [u8]], &'a [(bool, bool)]);
        let cases: &[Case] = &[
            // Whole header at once.
            (&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"], &[(false, false)]),
            // Trickled, terminator split.
            (
                &[b"GET / HTTP/1.1\r", b"\nHost: a\r\n", b"\r", b"\n"],
                &[(true, false), (true, false), (true, false), (false, false)],
            ),
            // Bare LF line ends.
            (&[b"GET / HTTP/1.1\nHost: a\n\n"], &[(false, false)]),
            // Empty lines before the request line do not end the header.
            (
                &[b"\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"],
                &[(true, false), (false, false)],
            ),
            // Keep-alive: nothing waits after a header until a response is
            // written; the next request's first byte starts a new header.
            (
                &[
                    b"GET / HTTP/1.1\r\n\r\n",
                    b"body",
                    b"<write>",
                    b"G",
                    b"ET / HTTP/1.1\r\n\r\n",
                ],
                &[
                    (false, false),
                    (false, false),
                    (false, false),
                    (true, true),
                    (false, false),
                ],
            ),
            // A write before the header ends changes nothing.
            (
                &[b"GET /", b"<write>", b"x"],
                &[(true, false), (true, false), (true, false)],
            ),
        ];
        for (steps, want) in cases {
            assert_eq!(run(HeaderWatch::h1(), steps), *want, "{steps:?}");
        }
        assert!(HeaderWatch::h1().waiting());
    }

    /// Whatever the reads' sizes, the state is the one of reading byte by
    /// byte (where the whole-header shortcut never applies).
    #[test]
    fn http1_reads_of_any_size_agree_with_bytes_one_at_a_time() {
        let inputs: &[&[&[u8]]] = &[
            &[
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                b"<write>",
                b"GET /b HTTP/1.1\r\n\r\n",
            ],
            &[
                b"\r\nGET / HTTP/1.1\n\n",
                b"<write>",
                b"\n\nGET / HTTP/1.1\r\n\r\n",
            ],
            &[
                b"GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
                b"<write>",
                b"x\n\r\n",
            ],
            &[
                b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n",
                b"body\r\n\r\n",
                b"<write>",
                b"a\n\n",
            ],
            &[b"GET /", b"\r\n\r\n", b"<write>", b"\r\n", b"GET\n\n"],
            &[
                b"GET / HTTP/1.1\r\n",
                b"Host: a\r\n",
                b"X: y\r\r\n",
                b"\r\n",
            ],
            &[b"GET / HTTP/1.1\n", b"A\r\n\r", b"\n"],
            &[
                b"G\n\n", b"<write>", b"G\r\n", b"\n", b"<write>", b"a\r\r\n",
            ],
        ];
        for steps in inputs {
            let mut bytes_one_by_one: Vec<&[u8]> = Vec::new();
            for step in *steps {
                if *step == b"<write>" {
                    bytes_one_by_one.push(step);
                } else {
                    bytes_one_by_one.extend(step.chunks(1));
                }
            }
            let mut whole = HeaderWatch::h1();
            let mut single = HeaderWatch::h1();
            let mut single_steps = bytes_one_by_one.iter();
            for step in *steps {
                let (began_whole, began_single);
                if *step == b"<write>" {
                    whole.wrote();
                    single.wrote();
                    single_steps.next();
                    (began_whole, began_single) = (false, false);
                } else {
                    began_whole = whole.read(step);
                    let mut any = false;
                    for _ in 0..step.len() {
                        any |= single.read(single_steps.next().unwrap());
                    }
                    began_single = any;
                }
                assert_eq!(whole.waiting(), single.waiting(), "{steps:?} at {step:?}");
                assert_eq!(began_whole, began_single, "{steps:?} at {step:?}");
            }
        }
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn http2() {
        let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let settings = frame(0x4, 0, &[0; 6]);
        let headers_end = frame(H2_HEADERS, H2_END_HEADERS | 0x1, b"hpack");
        let headers_more = frame(H2_HEADERS, 0, b"hp");
        let continuation = frame(H2_CONTINUATION, H2_END_HEADERS, b"ack");
        let data = frame(0x0, 0, b"body");

        let mut all = preface.to_vec();
        all.extend_from_slice(&settings);
        all.extend_from_slice(&headers_end);
        assert_eq!(run(HeaderWatch::h2(), &[&all]), [(false, false)]);

        // Byte by byte: waiting until the last payload byte of the block.
        let mut w = HeaderWatch::h2();
        for (i, b) in all.iter().enumerate() {
            w.read(&[*b]);
            assert_eq!(w.waiting(), i + 1 < all.len(), "byte {i}");
        }

        // A later block begins at its frame header and ends with its
        // CONTINUATION; DATA frames never wait.
        let steps: &[&[u8]] = &[
            &all,
            &data,
            &headers_more,
            &continuation[..5],
            &continuation[5..],
        ];
        assert_eq!(
            run(HeaderWatch::h2(), steps),
            [
                (false, false),
                (false, false),
                (true, true),
                (true, false),
                (false, false)
            ]
        );

        // One header ending and the next beginning in the same read.
        let mut two = headers_end.clone();
        two.extend_from_slice(&headers_more);
        assert_eq!(
            run(HeaderWatch::h2(), &[&all, &two]),
            [(false, false), (true, true)]
        );

        // Writes do not matter in HTTP/2.
        assert_eq!(run(HeaderWatch::h2(), &[b"<write>"]), [(true, false)]);
    }
}
