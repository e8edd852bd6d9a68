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
//! inflated text: a hit codes the rewritten text again, without inflating
//! the copy. Inflated texts (each up to `cache.manifest_max_size`) are kept
//! within [`INFLATED_BUDGET`] per thread; one that does not fit is inflated
//! again on each hit.

use std::cell::RefCell;

use bytes::Bytes;

use crate::manifest::{Coding, Plan, Token, Unchanged};

/// Plans kept per worker thread.
const SLOTS: usize = 32;

/// The most bytes of inflated text a worker thread keeps with its plans.
const INFLATED_BUDGET: usize = 2 << 20;

struct Kept {
    body: Bytes,
    /// The body's text: the body itself, or inflated.
    text: Bytes,
    plan: Plan,
}

impl Kept {
    /// The bytes its text holds besides the body's.
    fn inflated(&self) -> usize {
        if self.text.as_ptr() == self.body.as_ptr() {
            0
        } else {
            self.text.len()
        }
    }
}

#[derive(Default)]
struct Table {
    kept: Vec<Kept>,
    /// The slot the next new plan takes once the table is full.
    next: usize,
}

impl Table {
    /// The bytes of inflated text its plans keep.
    fn inflated(&self) -> usize {
        self.kept.iter().map(Kept::inflated).sum()
    }

    /// Keeps `kept` in the next slot, unless its inflated text would take
    /// the table past [`INFLATED_BUDGET`].
    fn keep(&mut self, kept: Kept) {
        let slot = (self.kept.len() == SLOTS).then_some(self.next);
        let freed = slot.map_or(0, |s| self.kept[s].inflated());
        if self.inflated() - freed + kept.inflated() > INFLATED_BUDGET {
            return;
        }
        match slot {
            None => self.kept.push(kept),
            Some(s) => {
                self.kept[s] = kept;
                self.next = (s + 1) % SLOTS;
            }
        }
    }
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
        table.keep(Kept {
            body: body.clone(),
            text,
            plan,
        });
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
    fn inflated_texts_stay_within_their_budget() {
        TABLE.with_borrow_mut(|table| *table = Table::default());
        // Each inflates to 300 KiB: six fit the 2 MiB, the seventh does not.
        let text = |i: usize| format!("#EXTM3U\n{}s{i}.ts\n", "#EXT-X-C\n".repeat(300 << 10 >> 3));
        let bodies: Vec<Bytes> = (0..8)
            .map(|i| Bytes::from(Coding::Gzip.encode(text(i).into_bytes()).unwrap()))
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            let got = rewrite_hls(body, Coding::Gzip, 1 << 20, &token("t"), None).unwrap();
            let got = Coding::Gzip.decode(&got, 1 << 20).unwrap();
            assert!(got.ends_with(format!("s{i}.ts?jwt=t\n").as_bytes()), "{i}");
        }
        let plain: Vec<Bytes> = (0..SLOTS)
            .map(|i| Bytes::from(format!("#EXTM3U\np{i}.ts\n")))
            .collect();
        TABLE.with_borrow(|table| {
            let inflated = table.inflated();
            assert_eq!((table.kept.len(), inflated <= INFLATED_BUDGET), (6, true));
        });
        // Plain copies take the slots of coded ones and give their bytes back.
        for body in &plain {
            rewrite_hls(body, Coding::Identity, 1 << 20, &token("t"), None).unwrap();
        }
        TABLE.with_borrow(|table| {
            assert_eq!((table.kept.len(), table.inflated()), (SLOTS, 0));
        });
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
