//! Retry policy for every S3 request of a run: exponential backoff with full
//! jitter, a cap on attempts per request, and one budget for the whole run so
//! that a dead or throttling endpoint fails in bounded time.
//!
//! The SDK's own retries are turned off (they cannot see a body that breaks
//! halfway); [`classify`] decides here what is worth another attempt:
//! throttling, 5xx, timeouts and broken connections. A 412 means the object
//! changed under an `If-Match` and is handled by the caller, not retried. A
//! checksum mismatch, from whatever layer, is an integrity failure: another
//! attempt of the same request is not what helps (the caller refetches once).
//! [`with_retry`] runs a whole request under this policy; a download that
//! streams a body runs its own loop around [`classify`] and [`Retry::backoff`].

use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::ErrorKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cause::{checksum_mismatch, flat, one_line};
use super::error::{GaveUp, S3Error};

const BACKOFF_CAP: Duration = Duration::from_secs(20);

/// How a failed request should be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Throttling, 5xx, timeout, broken connection: try again.
    Transient(String),
    /// `If-Match` failed: the object was replaced since it was listed.
    Changed,
    /// The key (or bucket) does not exist.
    NotFound(String),
    /// Credentials were refused or are missing.
    Credentials(String),
    /// The bytes received do not match the checksum S3 sent with them.
    Integrity(String),
    /// Anything else (access denied, bad request, ...): do not retry.
    Fatal(String),
}

/// Sort an SDK error into a [`Class`], keeping only non-secret detail.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default();
    let detail = detail(status, code, err.message(), err);
    match (err, status) {
        _ if checksum_mismatch(err).is_some() => Class::Integrity(detail),
        (_, Some(412)) => Class::Changed,
        // Not Implemented is an answer about the store, not a passing fault.
        (_, Some(501)) => Class::Fatal(detail),
        (_, Some(429 | 500..=599)) => Class::Transient(detail),
        (SdkError::TimeoutError(_) | SdkError::ResponseError(_), _) => Class::Transient(detail),
        // connection refused/reset, timeouts, and a pooled connection that
        // the server closed ("connection closed before message completed")
        (SdkError::DispatchFailure(d), _)
            if d.is_io() || d.is_timeout() || d.as_other() == Some(ErrorKind::TransientError) =>
        {
            Class::Transient(detail)
        }
        (_, Some(404)) => Class::NotFound(detail),
        _ if matches!(
            code,
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken"
        ) =>
        {
            Class::Credentials(detail)
        }
        (SdkError::ConstructionFailure(_), _) => Class::Credentials(detail),
        (SdkError::DispatchFailure(_), _) => Class::Credentials(detail),
        _ if code == "SlowDown" || code == "Throttling" => Class::Transient(detail),
        _ => Class::Fatal(detail),
    }
}

/// A failed body read (the stream of a GET): a checksum mismatch is an
/// integrity failure, anything else a broken transfer worth another attempt.
pub fn classify_body(err: &(dyn StdError + 'static)) -> Class {
    match checksum_mismatch(err) {
        Some(why) => Class::Integrity(why),
        None => Class::Transient(format!("body: {}", one_line(err))),
    }
}

/// What a failure says, on one line: status, code and S3's message when
/// there is one, else the SDK's chain of causes (a 200 whose body could not
/// be read says why).
fn detail(
    status: Option<u16>,
    code: &str,
    message: Option<&str>,
    err: &(dyn StdError + 'static),
) -> String {
    let head = match status {
        Some(s) if code.is_empty() => format!("status {s}"),
        Some(s) => format!("status {s} {code}"),
        None => String::new(),
    };
    let message = message.map_or_else(|| one_line(err), flat);
    // an unmodelled error with a code says no more than the code
    let said = message.is_empty() || message == format!("unhandled error ({code})");
    match (head.is_empty(), said) {
        (true, _) => message,
        (false, true) => head,
        (false, false) => format!("{head}: {message}"),
    }
}

/// The retry budget and backoff of one run.
#[derive(Debug)]
pub struct Retry {
    budget: AtomicU32,
    max_attempts: u32,
    base: Duration,
}

impl Retry {
    pub fn new(budget: u32, max_attempts: u32, base: Duration) -> Self {
        Self {
            budget: AtomicU32::new(budget),
            max_attempts: max_attempts.max(1),
            base,
        }
    }

    /// Called after the `failures`-th failed attempt of one request: sleeps
    /// before the next attempt, or gives up with a transfer error naming the
    /// key when the request's attempts or the run's budget are used up.
    pub async fn backoff(&self, failures: u32, key: &str, why: &str) -> Result<(), GaveUp> {
        let give_up = |reason: String| GaveUp {
            key: key.to_owned(),
            reason,
        };
        if failures >= self.max_attempts {
            return Err(give_up(format!("{why} (after {failures} attempts)")));
        }
        let took = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1));
        if took.is_err() {
            return Err(give_up(format!(
                "{why} (retry budget of the run exhausted)"
            )));
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << failures.min(16))
            .min(BACKOFF_CAP);
        let wait = StdRng::from_os_rng().random_range(Duration::ZERO..=ceiling);
        tracing::warn!(
            key,
            attempt = failures + 1,
            wait_ms = wait.as_millis() as u64,
            reason = why,
            "retrying"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Retries left in the run's budget.
    pub fn remaining(&self) -> u32 {
        self.budget.load(Ordering::SeqCst)
    }
}

/// Send a request (built afresh by `send` for each attempt) with retries.
pub async fn with_retry<T, E, F, Fut>(retry: &Retry, key: &str, mut send: F) -> Result<T, S3Error>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let mut failures = 0;
    loop {
        let err = match send().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match classify(&err) {
            Class::Transient(why) => {
                failures += 1;
                retry.backoff(failures, key, &why).await?;
            }
            Class::Changed => return Err(S3Error::Changed),
            Class::NotFound(d) => return Err(S3Error::NotFound(d)),
            Class::Credentials(d) => return Err(S3Error::Credentials(d)),
            Class::Integrity(d) => return Err(S3Error::Integrity(d)),
            Class::Fatal(d) => return Err(S3Error::Fatal(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ConnectorError;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn service(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(meta), raw)
    }

    fn dispatch(e: ConnectorError) -> SdkError<GetObjectError, HttpResponse> {
        SdkError::dispatch_failure(e)
    }

    #[test]
    fn classification() {
        let io = || std::io::Error::other("reset");
        let transient = [
            service(503, "SlowDown"),
            service(500, "InternalError"),
            service(429, "TooManyRequests"),
            dispatch(ConnectorError::io(io().into())),
            dispatch(ConnectorError::timeout(io().into())),
            dispatch(ConnectorError::other(
                io().into(),
                Some(ErrorKind::TransientError),
            )),
        ];
        for e in transient {
            assert!(matches!(classify(&e), Class::Transient(_)), "{e:?}");
        }
        assert_eq!(
            classify(&service(412, "PreconditionFailed")),
            Class::Changed
        );
        assert!(matches!(
            classify(&service(404, "NoSuchKey")),
            Class::NotFound(_)
        ));
        assert!(matches!(
            classify(&service(403, "InvalidAccessKeyId")),
            Class::Credentials(_)
        ));
        assert!(matches!(
            classify(&service(403, "AccessDenied")),
            Class::Fatal(_)
        ));
        assert!(matches!(
            classify(&service(501, "NotImplemented")),
            Class::Fatal(_)
        ));
        let no_creds = dispatch(ConnectorError::other(io().into(), None));
        assert!(matches!(classify(&no_creds), Class::Credentials(_)));
    }

    /// A 200 whose body could not be read, or a body that failed the SDK's
    /// checksum check: the message says the cause, on one line.
    #[test]
    fn details_carry_the_cause() {
        let answer = |status: u16, source: Box<dyn StdError + Send + Sync>| {
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            SdkError::service_error(GetObjectError::unhandled(source), raw)
        };
        let unreadable = answer(200, "error parsing XML:\n expected (long)".into());
        assert_eq!(
            classify(&unreadable),
            Class::Fatal("status 200: error parsing XML: expected (long)".into())
        );
        let mismatch = aws_smithy_checksums::body::validate::Error::ChecksumMismatch {
            expected: bytes::Bytes::from_static(&[1]),
            actual: bytes::Bytes::from_static(&[2]),
        };
        let corrupt = answer(200, Box::new(std::io::Error::other(mismatch)));
        assert!(
            matches!(classify(&corrupt), Class::Integrity(ref d) if d.contains("checksum mismatch")),
            "{:?}",
            classify(&corrupt)
        );
        assert_eq!(
            classify(&service(403, "AccessDenied")),
            Class::Fatal("status 403 AccessDenied".into())
        );
        let body = std::io::Error::other("connection reset");
        assert_eq!(
            classify_body(&body),
            Class::Transient("body: connection reset".into())
        );
    }

    #[tokio::test]
    async fn attempts_and_budget_are_bounded() {
        let r = Retry::new(3, 2, Duration::from_millis(1));
        assert!(r.backoff(1, "k", "x").await.is_ok());
        let err = r.backoff(2, "k", "boom").await.unwrap_err();
        assert!(err.to_string().contains("after 2 attempts"), "{err}");
        assert!(r.backoff(1, "k", "x").await.is_ok());
        assert!(r.backoff(1, "k", "x").await.is_ok());
        let err = r.backoff(1, "k", "x").await.unwrap_err();
        assert!(err.to_string().contains("budget"), "{err}");
        // Its exit code (9) is the sync's mapping, tested in sync::error.
        assert_eq!(r.remaining(), 0);
    }
}
