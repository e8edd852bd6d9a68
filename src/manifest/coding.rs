//! The content coding of a stored manifest. An origin may keep a playlist
//! gzip-compressed and say so in `Content-Encoding` (an S3 object uploaded
//! with that metadata, a web server that always compresses): the rewrite
//! then reads the decoded text and writes its result compressed again, so
//! the answer keeps the stored header's coding and only its length and
//! validator change, as for a plain manifest.
//!
//! Decoding is bounded: a body that would inflate past the limit
//! (`cache.manifest_max_size`) is not read further and is sent as stored,
//! as a plain manifest over the limit is.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::Unchanged;

/// How a stored manifest's body is coded, by its `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding (no field, or `identity` alone).
    Identity,
    /// `gzip` (or its alias `x-gzip`), applied once.
    Gzip,
    /// Anything else (`br`, `deflate`, `zstd`, several codings): the
    /// manifest is sent as stored.
    Other,
}

impl Coding {
    /// The coding the `Content-Encoding` field lines `values` name
    /// (RFC 9110 8.4: a list, names in any case; `identity` adds nothing).
    pub fn of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Coding {
        let mut coding = Coding::Identity;
        for value in values {
            for name in value.split(|&b| b == b',') {
                let name = name.trim_ascii();
                if name.is_empty() || name.eq_ignore_ascii_case(b"identity") {
                    continue;
                }
                let gzip =
                    name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip");
                coding = match (coding, gzip) {
                    (Coding::Identity, true) => Coding::Gzip,
                    _ => Coding::Other,
                };
            }
        }
        coding
    }

    /// The text of `body` coded this way, at most `limit` bytes of it.
    pub fn decode<'a>(
        self,
        body: &'a [u8],
        limit: usize,
    ) -> Result<std::borrow::Cow<'a, [u8]>, Unchanged> {
        match self {
            Coding::Identity => Ok(body.into()),
            Coding::Gzip => gunzip(body, limit).map(Into::into),
            Coding::Other => Err(Unchanged::Coding),
        }
    }

    /// `text` coded this way again.
    pub fn encode(self, text: Vec<u8>) -> Result<Vec<u8>, Unchanged> {
        match self {
            Coding::Identity => Ok(text),
            Coding::Gzip => gzip(&text),
            Coding::Other => Err(Unchanged::Coding),
        }
    }
}

/// The gzip members of `body` inflated, refused past `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Unchanged> {
    let mut text = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(body)
        .take(most)
        .read_to_end(&mut text)
        .map_err(|_| Unchanged::BadCoding)?;
    if text.len() > limit {
        return Err(Unchanged::TooLargeDecoded);
    }
    Ok(text)
}

/// `text` as one gzip member, at the fastest level: a rewritten playlist
/// repeats the token in every URI, which the fastest level already folds.
fn gzip(text: &[u8]) -> Result<Vec<u8>, Unchanged> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
    // Writing into a `Vec` does not fail.
    encoder
        .write_all(text)
        .and_then(|()| encoder.finish())
        .map_err(|_| Unchanged::BadCoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coding_is_read_from_the_field_lines() {
        let cases: &[(&[&str], Coding)] = &[
            (&[], Coding::Identity),
            (&["identity"], Coding::Identity),
            (&["gzip"], Coding::Gzip),
            (&["GZip"], Coding::Gzip),
            (&["x-gzip"], Coding::Gzip),
            (&[" gzip , identity "], Coding::Gzip),
            (&["identity", "gzip"], Coding::Gzip),
            (&["br"], Coding::Other),
            (&["deflate"], Coding::Other),
            (&["gzip, gzip"], Coding::Other),
            (&["gzip", "br"], Coding::Other),
            (&["gzip, br"], Coding::Other),
            (&[","], Coding::Identity),
        ];
        for (lines, want) in cases {
            let got = Coding::of(lines.iter().map(|l| l.as_bytes()));
            assert_eq!(got, *want, "{lines:?}");
        }
    }

    #[test]
    fn gzip_round_trips_and_other_codings_are_refused() {
        let text = b"#EXTM3U\nseg-1.ts?jwt=abc\n".repeat(100);
        let coded = Coding::Gzip.encode(text.clone()).unwrap();
        assert!(coded.len() < text.len() / 4, "{}", coded.len());
        assert_eq!(Coding::Gzip.decode(&coded, text.len()).unwrap(), &text[..]);
        assert_eq!(Coding::Identity.decode(&text, 0).unwrap(), &text[..]);
        assert_eq!(Coding::Identity.encode(text.clone()).unwrap(), text);
        assert_eq!(
            Coding::Other.decode(&coded, 1 << 20),
            Err(Unchanged::Coding)
        );
        assert_eq!(Coding::Other.encode(text), Err(Unchanged::Coding));
    }

    #[test]
    fn two_gzip_members_are_one_text() {
        let mut coded = Coding::Gzip.encode(b"#EXTM3U\n".to_vec()).unwrap();
        coded.extend(Coding::Gzip.encode(b"a.ts\n".to_vec()).unwrap());
        assert_eq!(
            Coding::Gzip.decode(&coded, 100).unwrap(),
            &b"#EXTM3U\na.ts\n"[..]
        );
    }

    #[test]
    fn a_body_that_is_not_gzip_or_inflates_past_the_limit_is_refused() {
        let text = b"#EXTM3U\n".to_vec();
        let coded = Coding::Gzip.encode(text.clone()).unwrap();
        let cases: &[(&[u8], usize, Result<usize, Unchanged>)] = &[
            (&coded, text.len(), Ok(text.len())),
            (&coded, text.len() - 1, Err(Unchanged::TooLargeDecoded)),
            (&coded[..coded.len() - 4], 100, Err(Unchanged::BadCoding)),
            (b"#EXTM3U\n", 100, Err(Unchanged::BadCoding)),
            (b"", 100, Err(Unchanged::BadCoding)),
        ];
        for (body, limit, want) in cases {
            let got = Coding::Gzip.decode(body, *limit).map(|t| t.len());
            assert_eq!(got, *want, "{body:?} within {limit}");
        }
        // A bomb: 64 MiB of zeros in under 1 MiB, stopped at the limit.
        let bomb = Coding::Gzip.encode(vec![0; 64 << 20]).unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        assert_eq!(
            Coding::Gzip.decode(&bomb, 4 << 20).map(|t| t.len()),
            Err(Unchanged::TooLargeDecoded)
        );
    }
}
