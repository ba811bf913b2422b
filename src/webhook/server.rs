//! The HTTPS server: accept loop, the connection limit, and a graceful
//! shutdown that loses no admission.
//!
//! Shape: tokio `TcpListener` → a permit from the connection semaphore →
//! one task per connection ([`conn`](super::conn): TLS handshake with the
//! certificate from the reloading [`CertStore`](super::tls::CertStore),
//! HTTP/1.1 or HTTP/2, idle timeout) serving the axum
//! [`router`](super::handler::router).
//!
//! At `max_connections` open connections the loop stops accepting until one
//! closes: further clients wait in the kernel's listen backlog, costing the
//! process nothing, and their handshake starts when a slot frees up.
//!
//! Shutdown is driven by a future so that tests and the demo can stop an
//! in-process server: when it resolves, `/readyz` turns 503 while the server
//! keeps serving for `shutdown_delay` (endpoints controllers need that time
//! to stop routing to the pod), then it stops accepting, asks open
//! connections to finish their request and close, and waits at most
//! `shutdown_grace` for them (every connection holds a permit until it ends,
//! so all permits back means all connections closed).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, info, info_span, warn};

use super::conn::{self, Settings};
use super::handler::BODY_LIMIT;
pub use super::handler::{AppState, router};
use super::tls::{self, Reloader, TlsError};
use super::{Limits, ServerConfig};

/// Why the server could not start (or stopped). Messages name the flag;
/// each carries its cause, which is not repeated as a `source()`.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on --listen {addr}: {error}")]
    Bind { addr: SocketAddr, error: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen for SIGTERM: {0}")]
    Signal(io::Error),
    #[error("{0}")]
    Limits(String),
}

/// Bind `config.listen` and serve until SIGTERM or SIGINT.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| ServerError::Bind {
            addr: config.listen,
            error,
        })?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServerError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
    };
    serve_with(listener, config, shutdown).await
}

/// Serve on an already bound listener until `shutdown` resolves, then drain.
///
/// Fails only at startup (unusable certificate files or limits); once
/// serving, errors of single connections are logged and never stop the
/// server.
pub async fn serve_with(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    check_limits(&config.limits)?;
    let state = AppState::with_limits(config.inject.clone(), &config.limits);
    let reloader = Reloader::load(
        config.tls_cert.clone(),
        config.tls_key.clone(),
        state.metrics(),
    )
    .await?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(reloader.store())?));
    let reload_task = reloader.spawn(config.tls_reload);
    let settings = Arc::new(Settings {
        acceptor,
        app: router(state.clone(), config.request_timeout),
        metrics: state.metrics(),
        idle_timeout: config.limits.idle_timeout,
        close_within: config.request_timeout + Duration::from_secs(1),
    });
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let (closing, _) = watch::channel(false);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, max_connections = config.limits.max_connections, "serving the admission webhook over HTTPS");
    }

    let stop_accepting = async {
        shutdown.await;
        state.set_ready(false);
        info!(delay = ?config.shutdown_delay, "shutting down: not ready, still serving");
        tokio::time::sleep(config.shutdown_delay).await;
    };
    tokio::pin!(stop_accepting);
    loop {
        let slot = tokio::select! {
            () = &mut stop_accepting => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => spawn_connection(tcp, peer, &settings, closing.subscribe(), slot),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drain(
        &closing,
        &slots,
        config.limits.max_connections,
        config.shutdown_grace,
    )
    .await;
    reload_task.abort();
    Ok(())
}

/// Budgets that could never admit a body of the largest accepted size, or
/// no connection at all, are a configuration error.
fn check_limits(limits: &Limits) -> Result<(), ServerError> {
    let mib = |b: usize| b.div_ceil(1024 * 1024);
    if limits.max_connections == 0 {
        return Err(ServerError::Limits(
            "--max-connections must be at least 1".into(),
        ));
    }
    if limits.body_budget < BODY_LIMIT {
        return Err(ServerError::Limits(format!(
            "--body-budget-mib must be at least {} (the largest accepted body)",
            mib(BODY_LIMIT)
        )));
    }
    Ok(())
}

/// Ask every connection to finish and close; wait at most `grace`.
async fn drain(closing: &watch::Sender<bool>, slots: &Arc<Semaphore>, max: usize, grace: Duration) {
    info!(?grace, "stopped accepting; draining connections");
    let _ = closing.send(true);
    let all_closed = async {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(max).await;
    };
    tokio::select! {
        () = all_closed => info!("all connections closed"),
        () = tokio::time::sleep(grace) => warn!("grace period over; closing remaining connections"),
    }
}

/// Serve one connection on its own task; the slot is freed when it ends.
fn spawn_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    settings: &Arc<Settings>,
    closing: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let settings = Arc::clone(settings);
    let span = info_span!("conn", %peer);
    tokio::spawn(
        async move {
            conn::serve(tcp, settings, closing).await;
            drop(slot);
        }
        .instrument(span),
    );
}
