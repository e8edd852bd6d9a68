//! The rewrite plans ([`crate::manifest::Plan`]) of the stored playlists a
//! worker thread answers from memory, so that a hit only writes the
//! student's body instead of walking the playlist again.
//!
//! A plan is kept with the stored body it was made for (a clone of its
//! `Bytes`, so that allocation stays the same one while the plan is kept)
//! and found again by that allocation's address and length. A new copy of
//! the object (a refresh, a purge then a fill) is a new allocation: its
//! plan is made anew, and the old one leaves the table as new ones come
//! in. Each worker thread has its own small table: no lock on a hit. The
//! memory tier holds bodies of at most 64 KiB, so the table holds at most
//! `SLOTS` of them per thread. A gzip-coded copy's plan is kept with its
//! inflated text (at most `cache.manifest_max_size`): a hit codes the
//! rewritten text again, without inflating the copy.

use std::cell::RefCell;

use bytes::Bytes;

use crate::manifest::{Coding, Plan, Token, Unchanged};

/// Plans kept per worker thread.
const SLOTS: usize = 32;

struct Kept {
    body: Bytes,
    /// The body's text: the body itself, or inflated.
    text: Bytes,
    plan: Plan,
}

#[derive(Default)]
struct Table {
    kept: Vec<Kept>,
    /// The slot the next new plan takes once the table is full.
    next: usize,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// The HLS playlist `body` (a stored copy held in memory, in `coding`,
/// inflated to at most `limit` bytes) rewritten with `token` for a request
/// through `this_host`, from its kept plan or a new one.
pub fn rewrite_hls(
    body: &Bytes,
    coding: Coding,
    limit: usize,
    token: &Token<'_>,
    this_host: Option<&str>,
) -> Result<Vec<u8>, Unchanged> {
    if token.value.is_empty() {
        return Err(Unchanged::NoToken);
    }
    TABLE.with_borrow_mut(|table| {
        let found = table.kept.iter().find(|k| {
            k.body.as_ptr() == body.as_ptr()
                && k.body.len() == body.len()
                && k.plan
                    .fits(k.text.len(), token.param, token.known_params, this_host)
        });
        if let Some(kept) = found {
            return coding.encode(kept.plan.apply(&kept.text, token)?);
        }
        let text = match coding {
            Coding::Identity => body.clone(),
            _ => Bytes::from(coding.decode(body, limit)?.into_owned()),
        };
        let plan = Plan::hls(&text, token.param, token.known_params, this_host)?;
        let rewritten = plan.apply(&text, token).and_then(|r| coding.encode(r));
        let kept = Kept {
            body: body.clone(),
            text,
            plan,
        };
        if table.kept.len() < SLOTS {
            table.kept.push(kept);
        } else {
            let slot = table.next;
            table.kept[slot] = kept;
            table.next = (slot + 1) % SLOTS;
        }
        rewritten
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["jwt"];

    fn token(value: &str) -> Token<'_> {
        Token {
            param: "jwt",
            value,
            known_params: KNOWN,
        }
    }

    #[test]
    fn a_kept_plan_serves_each_token_and_a_new_copy_gets_its_own() {
        let first = Bytes::from_static(b"#EXTM3U\na.ts\nhttps://h.example/b.ts\n");
        let cases: &[(&Bytes, &str, Option<&str>, &str)] = &[
            (
                &first,
                "t1",
                Some("h.example"),
                "#EXTM3U\na.ts?jwt=t1\nhttps://h.example/b.ts?jwt=t1\n",
            ),
            (
                &first,
                "t2",
                Some("h.example"),
                "#EXTM3U\na.ts?jwt=t2\nhttps://h.example/b.ts?jwt=t2\n",
            ),
            // Another host: the absolute URI is no longer this host's.
            (
                &first,
                "t3",
                Some("o.example"),
                "#EXTM3U\na.ts?jwt=t3\nhttps://h.example/b.ts\n",
            ),
            (
                &first,
                "t4",
                Some("h.example"),
                "#EXTM3U\na.ts?jwt=t4\nhttps://h.example/b.ts?jwt=t4\n",
            ),
        ];
        for (body, value, host, want) in cases {
            let got = rewrite_hls(body, Coding::Identity, 1 << 20, &token(value), *host).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{value}");
        }
        // A new copy of the same length at another address.
        let second = Bytes::from(b"#EXTM3U\nc.ts\nhttps://h.example/d.ts\n".to_vec());
        let got = rewrite_hls(
            &second,
            Coding::Identity,
            1 << 20,
            &token("t5"),
            Some("h.example"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "#EXTM3U\nc.ts?jwt=t5\nhttps://h.example/d.ts?jwt=t5\n"
        );
        assert_eq!(
            rewrite_hls(
                &Bytes::from_static(b"not a playlist"),
                Coding::Identity,
                1 << 20,
                &token("t"),
                None
            ),
            Err(Unchanged::NotAPlaylist)
        );
        assert_eq!(
            rewrite_hls(&first, Coding::Identity, 1 << 20, &token(""), None),
            Err(Unchanged::NoToken)
        );
    }

    #[test]
    fn a_gzip_copy_is_inflated_once_and_each_answer_coded_again() {
        let text = b"#EXTM3U\na.ts\n";
        let body = Bytes::from(Coding::Gzip.encode(text.to_vec()).unwrap());
        for value in ["t1", "t2"] {
            let got = rewrite_hls(&body, Coding::Gzip, 1 << 20, &token(value), None).unwrap();
            let got = Coding::Gzip.decode(&got, 1 << 20).unwrap();
            assert_eq!(got, format!("#EXTM3U\na.ts?jwt={value}\n").as_bytes());
        }
        TABLE.with_borrow(|table| {
            let kept = table.kept.iter().find(|k| k.body.as_ptr() == body.as_ptr());
            assert_eq!(kept.map(|k| &k.text[..]), Some(&text[..]));
        });
        let limited = rewrite_hls(&body, Coding::Gzip, 4, &token("t"), None);
        assert!(
            limited.is_ok(),
            "a kept plan serves, whatever the limit now"
        );
        let other = Bytes::from(Coding::Gzip.encode(text.to_vec()).unwrap());
        assert_eq!(
            rewrite_hls(&other, Coding::Gzip, 4, &token("t"), None),
            Err(Unchanged::TooLargeDecoded)
        );
    }

    #[test]
    fn the_table_stays_within_its_slots() {
        let bodies: Vec<Bytes> = (0..SLOTS * 2)
            .map(|i| Bytes::from(format!("#EXTM3U\ns{i}.ts\n")))
            .collect();
        for body in &bodies {
            rewrite_hls(body, Coding::Identity, 1 << 20, &token("t"), None).unwrap();
        }
        TABLE.with_borrow(|table| assert_eq!(table.kept.len(), SLOTS));
    }
}
