//! The hyper layer around `S3Service`: accept loop (plain or TLS), request
//! log, GetObject byte counting, and the body faults (cut, stall, corrupt)
//! decided by the access hook.
//!
//! Body faults live here because only the HTTP layer sees the response body
//! being polled: a cut is an error from the body stream (hyper then drops the
//! connection mid-body, as a dying server would), a stall is a timer between
//! two chunks, a corruption flips the first byte that goes out, and a canned
//! answer replaces the whole body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::S3;
use s3s::dto::{PutObjectInput, StreamingBlob};
use s3s::service::S3Service;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use super::faults::{Fault, Slot, SlotState};
use super::{Seen, Shared, lock};

/// Header the seeding helpers send: such requests are neither counted nor faulted.
pub(crate) const SEED_HEADER: &str = "x-s3-seed-harness-seed";

/// Either side of an accepted connection, plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accept connections (through `tls` when given) until the task is aborted;
/// dropping the JoinSet then aborts every connection task.
pub(crate) async fn serve(
    listener: TcpListener,
    service: S3Service,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (service, shared, tls) = (service.clone(), Arc::clone(&shared), tls.clone());
        let handler = service_fn(move |req| handle(service.clone(), Arc::clone(&shared), req));
        connections.spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => Box::new(stream),
                    // A client that does not trust the certificate ends only its connection.
                    Err(_) => return,
                },
            };
            let builder = Builder::new(TokioExecutor::new());
            // A connection error (a cut body, a client hanging up) ends only that connection.
            let _ = builder.serve_connection(TokioIo::new(io), handler).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    service: S3Service,
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<FaultBody>, Infallible> {
    let slot = if req.headers().contains_key(SEED_HEADER) {
        Slot::seed()
    } else {
        Slot::default()
    };
    let mut req = req.map(s3s::Body::from);
    req.extensions_mut().insert(slot.clone());
    let resp = service.call(req).await.unwrap_or_else(|_| {
        let mut resp = Response::new(s3s::Body::empty());
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    });
    let state = slot.take();
    let fault = state.fault.clone();
    if let (Some(Fault::ReplaceAfter(content)), Some(req)) = (&fault, &state.request) {
        replace(
            &shared,
            req.bucket.as_deref(),
            req.key.as_deref(),
            content.clone(),
        )
        .await;
    }
    let (mut parts, mut body) = resp.into_parts();
    if let Some(Fault::Respond(canned)) = &fault {
        parts.status = http::StatusCode::OK;
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, canned.len().into());
        body = s3s::Body::from(canned.clone());
    }
    let count = record(&shared, state, parts.status.as_u16()).then(|| Arc::clone(&shared));
    Ok(Response::from_parts(
        parts,
        FaultBody::new(body, fault, count),
    ))
}

/// Log the request; returns whether its response body bytes are counted (GetObject).
fn record(shared: &Shared, state: SlotState, status: u16) -> bool {
    if state.seed {
        return false;
    }
    let req = state.request.unwrap_or_default();
    let op = if req.op.is_empty() {
        "Unclassified".to_owned()
    } else {
        req.op
    };
    let is_get = op == "GetObject";
    lock(&shared.seen).push(Seen {
        op,
        key: req.key,
        range: req.range,
        if_match: req.if_match,
        status,
        fault: state.fault.as_ref().map(|f| format!("{f:?}")),
    });
    is_get
}

/// Overwrite an object through the store, as a concurrent writer would.
async fn replace(shared: &Shared, bucket: Option<&str>, key: Option<&str>, content: Bytes) {
    let (Some(bucket), Some(key)) = (bucket, key) else {
        return;
    };
    let len = i64::try_from(content.len()).expect("test content is far below i64::MAX");
    let input = PutObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.to_owned())
        .content_length(Some(len))
        .body(Some(StreamingBlob::from(s3s::Body::from(content))))
        .build()
        .expect("bucket, key and body are set");
    let req = super::store::internal_request(input, None);
    shared
        .fs
        .put_object(req)
        .await
        .expect("replace an object in the s3s-fs root");
}

/// A response body that counts bytes sent and applies a cut or a stall.
pub(crate) struct FaultBody {
    inner: s3s::Body,
    sent: u64,
    held: Option<Bytes>,
    pause: Option<Pin<Box<Sleep>>>,
    fault: Option<Fault>,
    cut: bool,
    count: Option<Arc<Shared>>,
}

/// How long a cut body idles before failing, so the bytes before the cut reach the client.
const CUT_FLUSH: Duration = Duration::from_millis(50);

impl FaultBody {
    /// Wrap `inner`; body faults in `fault` apply, and sent bytes add to
    /// `count`'s GetObject byte counter when given.
    fn new(inner: s3s::Body, fault: Option<Fault>, count: Option<Arc<Shared>>) -> FaultBody {
        FaultBody {
            inner,
            sent: 0,
            held: None,
            pause: None,
            fault,
            cut: false,
            count,
        }
    }

    /// Byte offset at which the armed body fault triggers, if any.
    fn trigger(&self) -> Option<u64> {
        match self.fault {
            Some(Fault::CutAfter(at) | Fault::StallAfter(at, _)) => Some(at),
            _ => None,
        }
    }

    /// Emit `data`, holding back whatever lies past the trigger offset and
    /// flipping the first byte that goes out under [`Fault::Corrupt`].
    fn emit(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if self.fault == Some(Fault::Corrupt) && !data.is_empty() {
            self.fault = None;
            let mut flipped = data.to_vec();
            flipped[0] ^= 0xff;
            data = Bytes::from(flipped);
        }
        if let Some(at) = self.trigger() {
            let room = usize::try_from(at.saturating_sub(self.sent)).unwrap_or(usize::MAX);
            if data.len() > room {
                self.held = Some(data.split_off(room));
            }
        }
        self.sent += data.len() as u64;
        if let Some(shared) = &self.count {
            shared
                .get_bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        Frame::data(data)
    }

    /// At the trigger offset, arm the timer: a stall waits it out, a cut waits
    /// briefly (so hyper flushes the bytes already sent) and then fails the body.
    fn arm_trigger(&mut self) {
        if self.trigger().is_none_or(|at| self.sent < at) {
            return;
        }
        let pause = match self.fault.take() {
            Some(Fault::StallAfter(_, pause)) => pause,
            _ => {
                self.cut = true;
                CUT_FLUSH
            }
        };
        self.pause = Some(Box::pin(tokio::time::sleep(pause)));
    }
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, s3s::StdError>>> {
        let this = self.get_mut();
        this.arm_trigger();
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
            if this.cut {
                return Poll::Ready(Some(Err("harness: connection cut".into())));
            }
        }
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(Ok(this.emit(held))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(this.emit(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other.into(),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
