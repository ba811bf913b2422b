//! Reading an SDK error's chain of causes: the one line a message carries
//! ([`one_line`]) and whether a checksum mismatch is among them
//! ([`checksum_mismatch`]).
//!
//! The SDK wraps the real cause in layers ("service error", "unhandled
//! error", a `ByteStream` "streaming error"), and its `DisplayErrorContext`
//! ends with a `Debug` dump of the whole tree. A message keeps the causes'
//! `Display` texts only, in order, without the empty wrappers, on one line.
//! Causes are the SDK's and the store's own words (codes, parse errors, OS
//! errors); no layer prints credentials or signed requests.

use std::error::Error as StdError;

use aws_smithy_checksums::body::validate::Error as ChecksumError;
use aws_smithy_types::error::ErrorMetadata;

/// Wrapper texts that say nothing when a more specific cause follows.
const WRAPPERS: [&str; 4] = [
    "service error",
    "unhandled error",
    "streaming error",
    "IO error",
];

/// Every error of the chain, `err` first. An `io::Error` that wraps another
/// error hides it from `source()`, so it is opened with `get_ref`.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| cause_of(e))
}

/// The next cause: an `io::Error`'s wrapped error, else `source()`.
fn cause_of<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner as &(dyn StdError + 'static)),
        None => e.source(),
    }
}

/// `text` on one line: every run of whitespace (newlines too) becomes one space.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The causes of `err` joined by `": "`, on one line: wrappers that only
/// announce a cause ("unhandled error (Code)" too) and the SDK's error
/// metadata (code and message, whose `Display` is a `Debug` dump) are
/// dropped, and a cause already quoted by the text before it is not
/// repeated. Only wrappers: the last of them.
pub fn one_line(err: &(dyn StdError + 'static)) -> String {
    let texts: Vec<String> = chain(err)
        .filter(|e| e.downcast_ref::<ErrorMetadata>().is_none())
        .map(|e| flat(&e.to_string()))
        .collect();
    let wrapper = |t: &str| {
        WRAPPERS
            .iter()
            .any(|w| t == *w || t.strip_prefix(w).is_some_and(|r| r.starts_with(" (")))
    };
    let mut out = String::new();
    for text in texts.iter().filter(|t| !t.is_empty() && !wrapper(t)) {
        if out.contains(text.as_str()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    if out.is_empty() {
        texts.last().cloned().unwrap_or_default()
    } else {
        out
    }
}

/// The SDK's own response-checksum check failed somewhere in `err`'s chain
/// (a body whose bytes do not match the checksum S3 sent): its one-line text.
pub fn checksum_mismatch(err: &(dyn StdError + 'static)) -> Option<String> {
    chain(err)
        .find(|e| e.downcast_ref::<ChecksumError>().is_some())
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use aws_smithy_checksums::ChecksumAlgorithm;
    use aws_smithy_checksums::body::validate::ChecksumBody;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::byte_stream::ByteStream;
    use bytes::Bytes;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<dyn StdError + Send + Sync>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn layers(texts: &[&'static str]) -> Layer {
        let mut err: Option<Box<dyn StdError + Send + Sync>> = None;
        for text in texts.iter().rev() {
            err = Some(Box::new(Layer(text, err)));
        }
        *err.unwrap().downcast::<Layer>().unwrap()
    }

    #[test]
    fn one_line_keeps_the_causes_only() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["service error", "unhandled error", "error parsing XML: x"],
                "error parsing XML: x",
            ),
            (&["unhandled error"], "unhandled error"),
            (
                &[
                    "dispatch failure",
                    "io error",
                    "Connection refused (os error 111)",
                ],
                "dispatch failure: io error: Connection refused (os error 111)",
            ),
            (&["timeout: read", "read"], "timeout: read"),
            (&["two\nlines", "  spaced   out "], "two lines: spaced out"),
        ];
        for (texts, want) in cases {
            assert_eq!(one_line(&layers(texts)), want, "{texts:?}");
        }
        let io = std::io::Error::other(layers(&["inner cause"]));
        assert_eq!(one_line(&io), "inner cause");
    }

    /// A body with a wrong CRC32, read through the SDK's own validating
    /// body and `ByteStream`, as a GetObject with ChecksumMode gets it.
    #[tokio::test]
    async fn a_checksum_mismatch_is_found_through_the_byte_stream() {
        let checksum = ChecksumAlgorithm::Crc32.into_impl();
        let wrong = Bytes::from_static(&[0, 0, 0, 0]);
        let body = ChecksumBody::new(SdkBody::from("some bytes"), checksum, wrong);
        let mut stream = ByteStream::new(SdkBody::from_body_1_x(body));
        let err = loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("a wrong checksum must fail the stream"),
            }
        };
        let found = checksum_mismatch(&err).expect("the mismatch is in the chain");
        assert!(found.contains("checksum mismatch"), "{found}");
        assert!(!one_line(&err).contains("Error {"), "{}", one_line(&err));
        assert_eq!(
            checksum_mismatch(&layers(&["streaming error", "reset"])),
            None
        );
        let wrapped = std::io::Error::other(err);
        assert!(checksum_mismatch(&wrapped).is_some());
    }
}
