//! Whether a connection is in the middle of receiving a request header,
//! followed from the bytes it reads (and, for HTTP/1, the fact that a
//! response was written), and, for HTTP/1, whether the header has grown
//! past the size limits. Pure state: the deadline and the refusal are the
//! stream wrapper's.
//!
//! - HTTP/1.x: a header runs from the connection's start, or from the first
//!   byte after a response was written, to the first empty line. Empty lines
//!   before the request line do not end it (they count towards its size).
//!   The header's size counts every byte of it, line ends included; a
//!   line's, its bytes other than CR and LF. The first non-empty line is the
//!   request line.
//! - HTTP/2: a header block runs from the connection's start to the end of
//!   the first HEADERS(+CONTINUATION) block, then from the first byte of
//!   each later HEADERS frame to the end of its block (RFC 9113 §4.3: a
//!   block is contiguous, no other frame comes in between).

use super::HeadLimits;

const H2_PREFACE_LEN: usize = 24;
/// The start of a HEAD request's request line.
const HEAD: &[u8] = b"HEAD ";
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

#[derive(Debug, Clone)]
pub struct HeaderWatch {
    kind: Kind,
}

/// Which HTTP/1 head limit a header went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The request line is longer than the line limit.
    RequestLine,
    /// A field line is longer than the line limit.
    Field,
    /// The whole head is larger than its limit.
    Head,
}

impl Over {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Over::RequestLine => "uri_too_long",
            Over::Field => "field_too_large",
            Over::Head => "header_too_large",
        }
    }
}

/// What one read showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// A new header began among the bytes (its deadline starts now, even
    /// if an earlier one ended in the same bytes).
    pub began: bool,
    /// The header went past a limit within these bytes. The watch is of no
    /// further use: the request is refused.
    pub over: Option<Over>,
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
        /// No line of this header has ended since its first non-empty
        /// byte: the request line is being read.
        first_line: bool,
        /// Bytes of this header so far.
        head_len: usize,
        /// Bytes of the current line so far, CR and LF not counted.
        line_len: usize,
        /// Bytes of the request line matching `HEAD ` so far; `u8::MAX`
        /// once one does not.
        head_method: u8,
        limits: HeadLimits,
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
    /// HTTP/1.x: waiting for the first request header from the start;
    /// heads are held to `limits`.
    pub fn h1(limits: HeadLimits) -> Self {
        HeaderWatch {
            kind: Kind::H1 {
                waiting: true,
                responded: false,
                text: false,
                newline: false,
                first_line: true,
                head_len: 0,
                line_len: 0,
                head_method: 0,
                limits,
            },
        }
    }

    /// The request line seen so far starts with `HEAD `: the answer to the
    /// request carries no body. Known once the limits are passed (the fast
    /// path that skips it never passes them).
    pub fn head_request(&self) -> bool {
        matches!(self.kind, Kind::H1 { head_method, .. } if usize::from(head_method) == HEAD.len())
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

    /// Follows bytes read.
    pub fn read(&mut self, bytes: &[u8]) -> Seen {
        let mut began = false;
        match &mut self.kind {
            Kind::H1 {
                waiting,
                responded,
                text,
                newline,
                first_line,
                head_len,
                line_len,
                head_method,
                limits,
            } => {
                if !*waiting && !*responded {
                    // After a header's end and before a response: body or
                    // pipelined bytes, which start nothing.
                    return Seen::default();
                }
                let so_far = if *responded { 0 } else { *head_len };
                if so_far + bytes.len() <= limits.line && h1_whole_header(bytes) {
                    // Whatever state the header was in, it has ended by the
                    // last byte (and a new one began at the first, after a
                    // response), and no limit can be passed in bytes this
                    // few. Saves the byte loop on nearly every read.
                    began = *responded;
                    *responded = false;
                    *waiting = false;
                    return Seen { began, over: None };
                }
                for &b in bytes {
                    if *responded {
                        *responded = false;
                        *waiting = true;
                        *text = false;
                        *newline = false;
                        *first_line = true;
                        *head_len = 0;
                        *line_len = 0;
                        *head_method = 0;
                        began = true;
                    }
                    if !*waiting {
                        continue;
                    }
                    *head_len += 1;
                    match b {
                        b'\n' if *text && *newline => *waiting = false,
                        b'\n' => {
                            *newline = true;
                            *first_line &= !*text;
                            *line_len = 0;
                        }
                        b'\r' => {}
                        _ => {
                            *text = true;
                            *newline = false;
                            *line_len += 1;
                            if *first_line && usize::from(*head_method) < HEAD.len() {
                                *head_method = if HEAD[usize::from(*head_method)] == b {
                                    *head_method + 1
                                } else {
                                    u8::MAX
                                };
                            }
                            if *line_len > limits.line {
                                let over = if *first_line {
                                    Over::RequestLine
                                } else {
                                    Over::Field
                                };
                                return Seen {
                                    began,
                                    over: Some(over),
                                };
                            }
                        }
                    }
                    if *head_len > limits.total {
                        return Seen {
                            began,
                            over: Some(Over::Head),
                        };
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
        Seen { began, over: None }
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

    /// Limits no test header comes near.
    const ROOMY: HeadLimits = HeadLimits {
        total: 32 * 1024,
        line: 8 * 1024,
    };

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
                    let began = watch.read(s).began;
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
            assert_eq!(run(HeaderWatch::h1(ROOMY), steps), *want, "{steps:?}");
        }
        assert!(HeaderWatch::h1(ROOMY).waiting());
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
            let mut whole = HeaderWatch::h1(ROOMY);
            let mut single = HeaderWatch::h1(ROOMY);
            let mut single_steps = bytes_one_by_one.iter();
            for step in *steps {
                let (began_whole, began_single);
                if *step == b"<write>" {
                    whole.wrote();
                    single.wrote();
                    single_steps.next();
                    (began_whole, began_single) = (false, false);
                } else {
                    began_whole = whole.read(step).began;
                    let mut any = false;
                    for _ in 0..step.len() {
                        any |= single.read(single_steps.next().unwrap()).began;
                    }
                    began_single = any;
                }
                assert_eq!(whole.waiting(), single.waiting(), "{steps:?} at {step:?}");
                assert_eq!(began_whole, began_single, "{steps:?} at {step:?}");
            }
        }
    }

    /// The first limit passed when `reads` (and `<write>` steps) are fed
    /// to a watch held to `limits`, with the index of the read.
    fn first_over(limits: HeadLimits, reads: &[&[u8]]) -> Option<(usize, Over)> {
        let mut watch = HeaderWatch::h1(limits);
        for (i, r) in reads.iter().enumerate() {
            if *r == b"<write>" {
                watch.wrote();
            } else if let Some(over) = watch.read(r).over {
                return Some((i, over));
            }
        }
        None
    }

    #[test]
    fn http1_limits() {
        // Lines of 16 bytes at most (line ends not counted), 40 in all
        // (line ends counted).
        let small = HeadLimits {
            total: 40,
            line: 16,
        };
        type Case<'a> = (&'a [&'a [u8]], Option<(usize, Over)>);
        let cases: &[Case] = &[
            // A request line of 16 bytes passes; of 17, it is too long.
            (&[b"GET /abcdefghijk\r\n\r\n"], None),
            (
                &[b"GET /abcdefghijkl\r\n\r\n"],
                Some((0, Over::RequestLine)),
            ),
            // The same for a field, also when split across reads.
            (&[b"GET / HTTP/1.1\r\nX: 0123456789abc\r\n\r\n"], None),
            (
                &[b"GET / HTTP/1.1\r\nX: 01234", b"56789abcd", b"\r\n\r\n"],
                Some((1, Over::Field)),
            ),
            // Bare LF line ends count as well.
            (
                &[b"GET / HTTP/1.1\nX: 0123456789abcd\n\n"],
                Some((0, Over::Field)),
            ),
            // 40 bytes in all pass, 41 do not.
            (
                &[b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD4\r\n\r\n"],
                None,
            ),
            (
                &[b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD:4\r\n\r\n"],
                Some((0, Over::Head)),
            ),
            // Empty lines before the request line count towards the head,
            // not towards the request line.
            (
                &[b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"],
                Some((0, Over::Head)),
            ),
            (&[b"\r\n\r\nGET /abcdefghijk\r\n\r\n"], None),
            // Each request on a kept-alive connection is measured on its
            // own: two heads of 36 bytes pass, the third's request line
            // does not.
            (
                &[
                    b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                    b"<write>",
                    b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                    b"<write>",
                    b"GET /abcdefghijkl",
                ],
                Some((4, Over::RequestLine)),
            ),
            // Bytes after a header and before its response (a body, or a
            // pipelined request the node does not serve) are not measured.
            (
                &[b"GET / HTTP/1.1\r\n\r\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"],
                None,
            ),
        ];
        for (reads, want) in cases {
            assert_eq!(first_over(small, reads), *want, "{reads:?}");
        }

        // Whether the refused request is a HEAD (its answer has no body).
        for (reads, head) in [
            (&[&b"HEAD /abcdefghijkl"[..]][..], true),
            (&[b"\r\nHE", b"AD / HTTP/1.1\r\nX: 0123456789abcd"], true),
            (&[b"GET /abcdefghijklm"], false),
            (&[b"HEADER /abcdefghijk"], false),
            (&[b"HEAD\r\nX: 0123456789abcd"], false),
            (
                &[b"HEAD / HTTP/1.1\r\n\r\n", b"<write>", b"GET /abcdefghijkl"],
                false,
            ),
        ] {
            let mut watch = HeaderWatch::h1(small);
            let mut over = None;
            for r in reads {
                if *r == b"<write>" {
                    watch.wrote();
                } else {
                    over = over.or(watch.read(r).over);
                }
            }
            assert!(over.is_some(), "{reads:?}");
            assert_eq!(watch.head_request(), head, "{reads:?}");
        }
    }

    /// The limit passed, and whether one is, does not depend on how the
    /// bytes are split into reads (the whole-header shortcut included).
    #[test]
    fn http1_limits_whatever_the_reads() {
        let heads: &[&[u8]] = &[
            b"GET /abcdefghijk\r\n\r\n",
            b"GET /abcdefghijkl\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: 0123456789abcd\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD4\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD:4\r\n\r\n",
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nGET / HTTP/1.1\n\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ];
        for limits in [
            HeadLimits {
                total: 40,
                line: 16,
            },
            HeadLimits {
                total: 40,
                line: 40,
            },
            ROOMY,
        ] {
            for head in heads {
                let over = |size: usize| {
                    let reads: Vec<&[u8]> = head.chunks(size).collect();
                    first_over(limits, &reads).map(|(_, o)| o)
                };
                let whole = over(head.len());
                for size in 1..head.len() {
                    assert_eq!(over(size), whole, "{head:?} in reads of {size}, {limits:?}");
                }
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
