//! What a listing's pages must be for s3-seed to trust them, as pure,
//! table-tested rules: keys decoded from `EncodingType=url` ([`decode_key`]),
//! sizes that are byte counts ([`size`]), and a listing that ends
//! ([`Pages::next`]).
//!
//! s3-seed asks for URL-encoded keys because XML 1.0 cannot carry most
//! control characters: without it one such key makes the whole page
//! unreadable. S3 encodes a space as `+` (and `+` as `%2B`); other stores use
//! `%20`; both decode here. A store that ignores the request answers without
//! `EncodingType`, and its keys are taken as they are.
//!
//! A listing ends when a page is not truncated. A store that hands out a
//! continuation token it gave before, a truncated page without a token, a
//! page whose keys do not come after those already listed (S3 lists in
//! UTF-8 byte order), or too many empty pages in a row would make the sync
//! list forever or list a part of the source as if it were all of it: each
//! is the store's fault, and the listing fails saying which.

use std::collections::HashSet;

use percent_encoding::percent_decode_str;

use crate::excerpt::Excerpt;

/// Truncated pages without a key, in a row, before the listing is called stuck.
pub const MAX_EMPTY_PAGES: u32 = 100;

/// The text a store's parse error carries when a listed `<Size>` is no
/// 64-bit signed number (the SDK's model name of the field).
const SIZE_FIELD: &str = "com.amazonaws.s3#Size";

/// A listed key as stored: URL-decoded when the page says `EncodingType=url`.
pub fn decode_key(raw: &str, url_encoded: bool) -> Result<String, String> {
    if !url_encoded {
        return Ok(raw.to_owned());
    }
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| {
            format!(
                "it lists the key {} that is not UTF-8 once URL-decoded",
                Excerpt::new(raw)
            )
        })
}

/// The size of a listed object in bytes: S3 sizes run from 0 to 2^63-1.
/// A missing size is 0, as an empty object is listed by some stores.
pub fn size(key: &str, size: Option<i64>) -> Result<u64, String> {
    let size = size.unwrap_or(0);
    u64::try_from(size).map_err(|_| {
        format!(
            "it lists the key {} with the impossible size {size}",
            Excerpt::new(key)
        )
    })
}

/// Why a listing request failed, said plainly when the SDK could not read a
/// `<Size>` (a value beyond 2^63-1, such as 2^64-1).
pub fn explain(detail: String) -> String {
    if detail.contains(SIZE_FIELD) {
        format!(
            "the store's listing is broken: it lists an object with an impossible size \
             (not a byte count from 0 to 2^63-1) ({detail})"
        )
    } else {
        detail
    }
}

/// The pages of one listing seen so far.
#[derive(Debug, Default)]
pub struct Pages {
    tokens: HashSet<String>,
    last_key: Option<String>,
    pages: u64,
    empty_in_a_row: u32,
}

impl Pages {
    /// After a page with `keys`: the continuation token to ask for next,
    /// `None` when the listing is complete, or why the store's listing
    /// cannot be trusted.
    pub fn next(
        &mut self,
        keys: &[&str],
        truncated: bool,
        token: Option<&str>,
    ) -> Result<Option<String>, String> {
        self.pages += 1;
        let page = self.pages;
        let token = token.filter(|t| !t.is_empty() && truncated);
        if let Some(token) = token.filter(|t| self.tokens.contains(*t)) {
            return Err(format!(
                "page {page} gives the continuation token {} again: it loops",
                Excerpt::new(token)
            ));
        }
        match (keys.iter().max(), &self.last_key) {
            (Some(max), Some(last)) if *max <= last.as_str() => {
                return Err(format!(
                    "page {page} lists no key after {}, the last one listed: it makes no progress",
                    Excerpt::new(last)
                ));
            }
            (Some(max), _) => {
                self.last_key = Some((*max).to_owned());
                self.empty_in_a_row = 0;
            }
            (None, _) => self.empty_in_a_row += 1,
        }
        if !truncated {
            return Ok(None);
        }
        let Some(token) = token else {
            return Err(format!(
                "page {page} is truncated but gives no continuation token"
            ));
        };
        if self.empty_in_a_row > MAX_EMPTY_PAGES {
            return Err(format!(
                "{} truncated pages in a row list no key: it makes no progress",
                self.empty_in_a_row
            ));
        }
        self.tokens.insert(token.to_owned());
        Ok(Some(token.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_only_when_the_page_says_so() {
        let cases = [
            ("a+b.txt", true, Ok("a b.txt")),
            ("a%2Bb.txt", true, Ok("a+b.txt")),
            ("100%25.csv", true, Ok("100%.csv")),
            ("%ED%95%9C/x", true, Ok("\u{d55c}/x")),
            ("bad%01key", true, Ok("bad\u{1}key")),
            ("run%20books/x", true, Ok("run books/x")),
            ("a+b%2B", false, Ok("a+b%2B")),
            ("%FF", true, Err("not UTF-8")),
        ];
        for (raw, url, want) in cases {
            match (decode_key(raw, url), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{raw}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{raw}: {got}"),
                (got, want) => panic!("{raw}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn sizes_are_byte_counts() {
        assert_eq!(size("k", Some(0)), Ok(0));
        assert_eq!(size("k", Some(i64::MAX)), Ok(i64::MAX as u64));
        assert_eq!(size("k", None), Ok(0));
        let err = size("p/k", Some(-1)).unwrap_err();
        assert!(err.contains("\"p/k\" with the impossible size -1"), "{err}");
        let parse = "status 200: error parsing XML: expected (long: `com.amazonaws.s3#Size`)";
        assert!(explain(parse.to_owned()).contains("impossible size"));
        assert_eq!(
            explain("status 403 AccessDenied".into()),
            "status 403 AccessDenied"
        );
    }

    /// One listing: (keys, truncated, token) per page, and the outcome of the last.
    type Listing<'a> = (
        &'a [(&'a [&'a str], bool, Option<&'a str>)],
        Result<(), &'a str>,
    );

    #[test]
    fn a_listing_must_end() {
        let empty: &[&str] = &[];
        let cases: [Listing; 8] = [
            (&[(&["a", "b"], false, None)], Ok(())),
            (&[(&["a"], true, Some("t1")), (&["b"], false, None)], Ok(())),
            (&[(empty, false, None)], Ok(())),
            (
                &[
                    (&["a"], true, Some("t1")),
                    (empty, true, Some("t2")),
                    (&["b"], false, None),
                ],
                Ok(()),
            ),
            (
                &[(&["a"], true, Some("t")), (&["b"], true, Some("t"))],
                Err("token \"t\" again: it loops"),
            ),
            (
                &[(&["a", "b"], true, Some("t1")), (&["a"], true, Some("t2"))],
                Err("no key after \"b\""),
            ),
            (
                &[(&["b"], true, Some("t1")), (&["b"], false, None)],
                Err("no progress"),
            ),
            (
                &[(&["a"], true, None)],
                Err("truncated but gives no continuation token"),
            ),
        ];
        for (listing, want) in cases {
            let mut pages = Pages::default();
            let mut outcome = Ok(());
            for (i, (keys, truncated, token)) in listing.iter().enumerate() {
                let next = pages.next(keys, *truncated, *token);
                let last = i + 1 == listing.len();
                match next {
                    Ok(next) if !last => assert_eq!(next.as_deref(), *token, "{listing:?}"),
                    Ok(next) => {
                        assert_eq!(next, None, "{listing:?}");
                    }
                    Err(e) => {
                        assert!(last, "{listing:?} failed early: {e}");
                        outcome = Err(e);
                    }
                }
            }
            match (outcome, want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{listing:?}: {got}"),
                (got, want) => panic!("{listing:?}: {got:?}, want {want:?}"),
            }
        }
        let mut stuck = Pages::default();
        let tokens: Vec<String> = (0..=MAX_EMPTY_PAGES).map(|i| format!("t{i}")).collect();
        for t in &tokens[..tokens.len() - 1] {
            assert!(stuck.next(&[], true, Some(t)).is_ok());
        }
        let err = stuck
            .next(&[], true, tokens.last().map(String::as_str))
            .unwrap_err();
        assert!(err.contains("pages in a row list no key"), "{err}");
    }
}
