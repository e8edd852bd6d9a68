//! An HLS playlist's rewrite in two steps, so that a stored copy answered
//! to many students is walked once: [`Plan::hls`] finds where the token
//! goes (the walk over every line, the decision for every URI), and
//! [`Plan::apply`] writes one student's body from it: the stored bytes in
//! spans with the token pair between them, into one allocation of the
//! exact size. (Sending those spans and pairs as they are, one `sendmsg`
//! of two slices per URI, was tried: on a 100-segment playlist the kernel's
//! copy of 200 small slices cost more than this copy and the send of one.)
//!
//! Where the token goes depends on the body, the request's host and the
//! token's parameter names, never on the token's value: a plan holds for
//! every request with the same host and names ([`Plan::fits`]). A DASH
//! MPD has no plan: some of its edits rewrite a URI around the token, so
//! it is rewritten whole per request.

use super::uri::{Propagation, Separator};
use super::{Token, Unchanged, hls};
use crate::request::push_encoded;

/// Where the token goes in one playlist, for one host and parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    insertions: Vec<(usize, Separator)>,
    /// The length of the body the plan was made for.
    len: usize,
    param: String,
    known_params: Vec<String>,
    host: Option<String>,
}

impl Plan {
    /// The plan of an HLS playlist `body` for tokens in `param` (with the
    /// node's `known_params`) asked through `this_host`; `Err` when the body
    /// is sent as stored, as [`super::rewrite`] would say.
    pub fn hls(
        body: &[u8],
        param: &str,
        known_params: &[&str],
        this_host: Option<&str>,
    ) -> Result<Plan, Unchanged> {
        if param.is_empty() {
            return Err(Unchanged::NoToken);
        }
        let text = std::str::from_utf8(body).map_err(|_| Unchanged::NotUtf8)?;
        // The value does not change where the token goes.
        let names = Token {
            param,
            value: "",
            known_params,
        };
        let insertions = hls::insertions(text, &Propagation::new(&names, this_host))?;
        Ok(Plan {
            insertions,
            len: body.len(),
            param: param.to_owned(),
            known_params: known_params.iter().map(|&p| p.to_owned()).collect(),
            host: this_host.map(str::to_owned),
        })
    }

    /// Whether the plan holds for a body of `len` bytes (the same stored
    /// copy: the caller tells) asked with these names through this host.
    pub fn fits(
        &self,
        len: usize,
        param: &str,
        known_params: &[&str],
        this_host: Option<&str>,
    ) -> bool {
        self.len == len
            && self.param == param
            && self.host.as_deref() == this_host
            && self.known_params.len() == known_params.len()
            && self
                .known_params
                .iter()
                .zip(known_params)
                .all(|(a, b)| a == b)
    }

    /// The body the plan was made for, with `token`'s pair at every
    /// insertion point. `body` must be that body; `Err(NoToken)` for an
    /// empty value, and for a body of another length or a token in another
    /// parameter than the plan's (nothing is inserted then).
    pub fn apply(&self, body: &[u8], token: &Token<'_>) -> Result<Vec<u8>, Unchanged> {
        if token.value.is_empty() || token.param != self.param || body.len() != self.len {
            return Err(Unchanged::NoToken);
        }
        // `?param=value`, both percent-encoded; `&` and nothing take its place.
        let mut pair = String::with_capacity(3 * (token.param.len() + token.value.len()) + 2);
        pair.push('?');
        push_encoded(&mut pair, token.param.as_bytes());
        pair.push('=');
        push_encoded(&mut pair, token.value.as_bytes());
        let pair = pair.as_bytes();
        let added: usize = self
            .insertions
            .iter()
            .map(|&(_, separator)| match separator {
                Separator::Nothing => pair.len() - 1,
                Separator::Question | Separator::Ampersand => pair.len(),
            })
            .sum();
        let mut out = Vec::with_capacity(body.len() + added);
        let mut copied = 0;
        for &(at, separator) in &self.insertions {
            out.extend_from_slice(&body[copied..at]);
            match separator {
                Separator::Question => out.extend_from_slice(pair),
                Separator::Ampersand => {
                    out.push(b'&');
                    out.extend_from_slice(&pair[1..]);
                }
                Separator::Nothing => out.extend_from_slice(&pair[1..]),
            }
            copied = at;
        }
        out.extend_from_slice(&body[copied..]);
        Ok(out)
    }
}
