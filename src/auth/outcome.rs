//! What the token gate decided for a request, as the access log (`auth`)
//! names it.

use super::Reject;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The gate has not run (or the request never reached it).
    Unchecked,
    /// A valid token opened the request.
    Ok,
    /// The path is public: no token needed.
    Public,
    /// Another node of the fleet checked the client's token and sent the
    /// request on with a valid hop marker.
    Peer,
    /// The token was refused.
    Rejected(Reject),
}

impl AuthOutcome {
    /// `-`, `ok`, `public`, or the rejection reason.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Unchecked => "-",
            AuthOutcome::Ok => "ok",
            AuthOutcome::Public => "public",
            AuthOutcome::Peer => "peer",
            AuthOutcome::Rejected(reject) => reject.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let cases = [
            (AuthOutcome::Unchecked, "-"),
            (AuthOutcome::Ok, "ok"),
            (AuthOutcome::Public, "public"),
            (AuthOutcome::Peer, "peer"),
            (AuthOutcome::Rejected(Reject::Expired), "expired"),
            (AuthOutcome::Rejected(Reject::OutOfScope), "out_of_scope"),
        ];
        for (outcome, want) in cases {
            assert_eq!(outcome.as_str(), want, "{outcome:?}");
        }
    }
}
