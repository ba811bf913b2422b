//! Retry policy for every S3 request of a run: exponential backoff with full
//! jitter, a cap on attempts per request, and one budget for the whole run so
//! that a dead or throttling endpoint fails in bounded time.
//!
//! The SDK's own retries are turned off (they cannot see a body that breaks
//! halfway); [`classify`] decides here what is worth another attempt:
//! throttling, 5xx, timeouts and broken connections. A 412 means the object
//! changed under an `If-Match` and is handled by the caller, not retried.
//! [`with_retry`] runs a whole request under this policy; a download that
//! streams a body runs its own loop around [`classify`] and [`Retry::backoff`].

use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::ErrorKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    let detail = match (status, err.message()) {
        (Some(s), Some(m)) => format!("status {s} {code}: {m}"),
        (Some(s), None) => format!("status {s} {code}"),
        _ => DisplayErrorContext(err).to_string(),
    };
    match (err, status) {
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
