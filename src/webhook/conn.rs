//! One connection, from the TLS handshake to its close.
//!
//! Why a connection needs its own idle timer: hyper's HTTP/1.1
//! `header_read_timeout` only starts once hyper-util's auto builder has read
//! the 24 bytes that tell HTTP/1.1 from the HTTP/2 preface, so a client that
//! finishes the TLS handshake and then sends nothing (or fewer than 24 bytes)
//! held its connection, its TLS state and its task forever; and HTTP/2 has
//! no idle timeout at all. So:
//!
//! - the protocol is taken from ALPN when the client offered it (the API
//!   server does), and only a client without ALPN is sniffed;
//! - every request is counted while it is in flight, and a connection with
//!   none for `idle_timeout` is asked to close: HTTP/1.1 closes at once,
//!   HTTP/2 sends GOAWAY and closes when its streams are done. The same
//!   happens to every connection when the server shuts down. One that never
//!   carried a request is simply dropped (an HTTP/2 connection still waiting
//!   for the client's preface cannot send GOAWAY, and has nothing to lose);
//! - a connection asked to close gets `close_within` more to finish, then
//!   is dropped, so a peer that ignores GOAWAY cannot keep it.
//!
//! HTTP/2 is also held to small windows and few concurrent streams: data a
//! client sends before the handler reads it (a request waiting for room in
//! the review budget) is buffered per connection up to the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::debug;

use super::metrics::Metrics;

/// Longest time a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a client may take to send HTTP/1.1 request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1.1 read buffer at most (request headers must fit in it).
const H1_MAX_BUF: usize = 64 * 1024;
/// HTTP/2 flow-control windows, per stream and per connection: the spec's
/// default, instead of hyper's 1 MiB.
const H2_WINDOW: u32 = 65_535;
/// HTTP/2 streams per connection; a client that needs more opens another
/// connection (Go's HTTP/2 client does).
const H2_MAX_STREAMS: u32 = 32;
/// HTTP/2 request headers, decoded, at most.
const H2_MAX_HEADERS: u32 = 16 * 1024;

/// What every connection of one server shares.
pub struct Settings {
    pub acceptor: TlsAcceptor,
    pub app: Router,
    pub metrics: Arc<Metrics>,
    /// Close a connection with no request in flight for this long.
    pub idle_timeout: Duration,
    /// After asking a connection to close, drop it after this long.
    pub close_within: Duration,
}

/// Handshake, serve until idle, shut down or closed by the peer.
pub async fn serve(tcp: TcpStream, settings: Arc<Settings>, mut shutdown: watch::Receiver<bool>) {
    let _counted = settings.metrics.connection();
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, settings.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
        Err(_) => return debug!("TLS handshake timed out"),
    };
    let builder = builder(tls.get_ref().1.alpn_protocol());
    let activity = Arc::new(Activity::new());
    let service = {
        let app = settings.app.clone();
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut drop_at: Option<Instant> = None;
    loop {
        let idle_at = activity.idle_deadline(settings.idle_timeout, Instant::now());
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if drop_at.is_none() => {
                if activity.never_used() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                drop_at = Some(Instant::now() + settings.close_within);
            }
            () = tokio::time::sleep_until(idle_at), if drop_at.is_none() => {
                let now = Instant::now();
                if activity.idle_deadline(settings.idle_timeout, now) <= now {
                    debug!("closing an idle connection");
                    settings.metrics.idle_closed();
                    if activity.never_used() {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    drop_at = Some(Instant::now() + settings.close_within);
                }
            }
            () = sleep_until_some(drop_at) => return debug!("connection did not close in time; dropped"),
        }
    }
}

/// HTTP/1.1 and HTTP/2 settings; the protocol ALPN chose, if any.
fn builder(alpn: Option<&[u8]>) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(H1_MAX_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADERS);
    match alpn {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Requests begun so far.
    begun: AtomicUsize,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request.
    last_end_ms: AtomicU64,
}

/// One request in flight; its drop marks the end.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            begun: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// True while no request has begun on the connection.
    fn never_used(&self) -> bool {
        self.begun.load(Ordering::SeqCst) == 0
    }

    /// When the connection has been idle for `idle`, if nothing happens
    /// until then; one `idle` from `now` while a request is in flight.
    fn idle_deadline(&self, idle: Duration, now: Instant) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return now + idle;
        }
        let last = Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst));
        self.opened + last + idle
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let since = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(since, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_deadline_follows_the_last_request() {
        let idle = Duration::from_secs(60);
        let activity = Arc::new(Activity::new());
        let opened = activity.opened;
        assert_eq!(activity.idle_deadline(idle, Instant::now()), opened + idle);
        assert!(activity.never_used());
        let request = activity.begin();
        assert!(!activity.never_used());
        // In flight: never idle, however long it takes.
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(activity.idle_deadline(idle, later), later + idle);
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(request);
        let deadline = activity.idle_deadline(idle, later);
        assert!(deadline >= opened + Duration::from_millis(30) + idle);
        assert!(deadline <= Instant::now() + idle);
    }
}
