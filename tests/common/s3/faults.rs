//! Fault rules, and the s3s access hook that names each request and decides
//! which rule fires on it.
//!
//! The hook runs after s3s has parsed and authenticated a request and before
//! the store sees it, so it knows the exact AWS operation name and key without
//! re-implementing S3 routing. Errors and latency are applied right here; body
//! faults (cut, stall, corrupt, a canned answer) and the post-response object
//! replacement are handed to the HTTP layer through a [`Slot`] in the request
//! extensions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{IF_MATCH, RANGE};
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::{Shared, lock};

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and S3 error code (XML error body); the store is not touched.
    Error { status: u16, code: &'static str },
    /// Wait this long before handling the request.
    Latency(Duration),
    /// Send this many response body bytes, then drop the connection.
    CutAfter(u64),
    /// Send this many body bytes, send nothing for the duration, then the rest.
    StallAfter(u64, Duration),
    /// Send the response body with the bits of its first byte flipped (same
    /// length, same headers), as a faulty disk or middlebox would.
    Corrupt,
    /// Answer 200 with this XML body in place of the store's (same headers,
    /// its own length): for answers s3s cannot produce, such as a listing
    /// that loops or a `<Size>` beyond `i64`. See [`Fault::listing`].
    Respond(Bytes),
    /// Serve the request normally, then overwrite the addressed object with
    /// these bytes through the store (so its ETag changes). The response in
    /// flight still streams the old content, as S3 would.
    ReplaceAfter(Bytes),
}

impl Fault {
    /// 503 SlowDown, S3's throttling answer.
    pub fn slow_down() -> Fault {
        Fault::Error {
            status: 503,
            code: "SlowDown",
        }
    }

    /// 500 InternalError.
    pub fn internal_error() -> Fault {
        Fault::Error {
            status: 500,
            code: "InternalError",
        }
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable() -> Fault {
        Fault::Error {
            status: 503,
            code: "ServiceUnavailable",
        }
    }

    /// A ListObjectsV2 page of the harness bucket, as [`Fault::Respond`]:
    /// `entries` are (key, size) written verbatim into the XML (a key must
    /// already be escaped or URL-encoded as the test wants it), truncated with
    /// `next` as its continuation token when given.
    pub fn listing(entries: &[(&str, &str)], next: Option<&str>) -> Fault {
        let contents: String = (1..)
            .zip(entries)
            .map(|(n, (key, size))| {
                format!(
                    "<Contents><Key>{key}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>\
                     <ETag>&quot;{n:032x}&quot;</ETag><Size>{size}</Size>\
                     <StorageClass>STANDARD</StorageClass></Contents>"
                )
            })
            .collect();
        let next = next.map_or_else(
            || "<IsTruncated>false</IsTruncated>".to_owned(),
            |t| format!("<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"),
        );
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>{bucket}</Name><Prefix></Prefix><KeyCount>{count}</KeyCount>\
             <MaxKeys>1000</MaxKeys>{next}{contents}</ListBucketResult>",
            bucket = super::BUCKET,
            count = entries.len(),
        );
        Fault::Respond(Bytes::from(xml))
    }

    /// 429 TooManyRequests, the throttling answer of some S3-compatible stores.
    pub fn too_many_requests() -> Fault {
        Fault::Error {
            status: 429,
            code: "TooManyRequests",
        }
    }
}

/// A fault plus the requests it applies to. Matches every request, once,
/// until narrowed with the builder methods.
#[derive(Debug, Clone)]
pub struct Rule {
    fault: Fault,
    op: Option<String>,
    key: Option<String>,
    ranged: Option<bool>,
    pub(crate) remaining: u32,
}

impl Rule {
    /// A rule that applies `fault` to the next matching request.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            fault,
            op: None,
            key: None,
            ranged: None,
            remaining: 1,
        }
    }

    /// Only requests for this operation (`GetObject`, `ListObjectsV2`, ...).
    pub fn op(mut self, op: &str) -> Rule {
        self.op = Some(op.to_owned());
        self
    }

    /// Only requests addressing this key.
    pub fn key(mut self, key: &str) -> Rule {
        self.key = Some(key.to_owned());
        self
    }

    /// Only requests with (`true`) or without (`false`) a `Range` header.
    pub fn ranged(mut self, ranged: bool) -> Rule {
        self.ranged = Some(ranged);
        self
    }

    /// Fire on the next `n` matching requests instead of one.
    pub fn times(mut self, n: u32) -> Rule {
        self.remaining = n;
        self
    }

    fn matches(&self, req: &Classified) -> bool {
        self.remaining > 0
            && self.op.as_ref().is_none_or(|op| *op == req.op)
            && self
                .key
                .as_ref()
                .is_none_or(|k| req.key.as_ref() == Some(k))
            && self.ranged.is_none_or(|r| r == req.range.is_some())
    }
}

/// A request as the access hook classified it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Classified {
    pub op: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub range: Option<String>,
    pub if_match: Option<String>,
}

/// Per-request channel between the HTTP layer and the access hook.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<SlotState>>);

#[derive(Debug, Default)]
pub(crate) struct SlotState {
    /// Seeding traffic: never faulted, never counted.
    pub seed: bool,
    pub request: Option<Classified>,
    pub fault: Option<Fault>,
}

impl Slot {
    pub fn seed() -> Slot {
        Slot(Arc::new(Mutex::new(SlotState {
            seed: true,
            ..SlotState::default()
        })))
    }

    pub fn take(&self) -> SlotState {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// The `S3Access` hook: classify, authorize, pick a fault.
pub(crate) struct Gate {
    shared: Arc<Shared>,
}

impl Gate {
    pub fn new(shared: Arc<Shared>) -> Gate {
        Gate { shared }
    }

    /// The first armed rule matching `req` fires: one use is consumed.
    fn fire(&self, req: &Classified) -> Option<Fault> {
        let mut plan = lock(&self.shared.plan);
        let rule = plan.iter_mut().find(|rule| rule.matches(req))?;
        rule.remaining -= 1;
        Some(rule.fault.clone())
    }
}

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let request = classify(cx);
        let authenticated = cx.credentials().is_some();
        let slot = cx
            .extensions_mut()
            .get::<Slot>()
            .cloned()
            .unwrap_or_default();
        let fault = {
            let mut state = lock(&slot.0);
            let fault = (authenticated && !state.seed)
                .then(|| self.fire(&request))
                .flatten();
            state.request = Some(request);
            state.fault.clone_from(&fault);
            fault
        };
        if !authenticated {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "signature is required",
            ));
        }
        match fault {
            Some(Fault::Error { status, code }) => Err(injected_error(status, code)),
            Some(Fault::Latency(delay)) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn classify(cx: &S3AccessContext<'_>) -> Classified {
    let header = |name| {
        cx.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (bucket, key) = match cx.s3_path() {
        S3Path::Root => (None, None),
        S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
        S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
    };
    Classified {
        op: cx.s3_op().name().to_owned(),
        bucket,
        key,
        range: header(RANGE),
        if_match: header(IF_MATCH),
    }
}

fn injected_error(status: u16, code: &'static str) -> S3Error {
    let Ok(code) = code.parse::<S3ErrorCode>();
    let mut err = S3Error::with_message(code, "injected by the test harness");
    err.set_status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    err
}
