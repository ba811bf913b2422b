//! The HTTPS server: accept loop, TLS handshakes, HTTP/1.1 and HTTP/2, and a
//! graceful shutdown that loses no admission.
//!
//! Shape: tokio `TcpListener` → `tokio_rustls::TlsAcceptor` (certificate
//! from the reloading [`CertStore`](super::tls::CertStore)) → hyper-util's
//! auto builder serving the axum [`router`](super::handler::router). Each
//! connection is watched by hyper-util's `GracefulShutdown`.
//!
//! Shutdown is driven by a future so that tests and the demo can stop an
//! in-process server: when it resolves, `/readyz` turns 503 while the server
//! keeps serving for `shutdown_delay` (endpoints controllers need that time
//! to stop routing to the pod), then it stops accepting, asks open
//! connections to finish their request and close, and waits at most
//! `shutdown_grace` for them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use super::ServerConfig;
pub use super::handler::{AppState, router};
use super::tls::{self, Reloader};

/// Longest time a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a client may take to send the request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start (or stopped). Messages name the flag.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on --listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {flag} {}: {source}", path.display())]
    ReadFile {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--tls-cert is not a PEM certificate chain: {0}")]
    CertPem(String),
    #[error("--tls-key is not a PEM private key: {0}")]
    KeyPem(String),
    #[error("--tls-key does not belong to the certificate in --tls-cert: {0}")]
    KeyMismatch(#[source] rustls::Error),
    #[error("cannot configure TLS: {0}")]
    TlsConfig(#[source] rustls::Error),
    #[error("cannot listen for SIGTERM: {0}")]
    Signal(#[source] io::Error),
}

/// Bind `config.listen` and serve until SIGTERM or SIGINT.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
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
/// Fails only at startup (unusable certificate files); once serving, errors
/// of single connections are logged and never stop the server.
pub async fn serve_with(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let state = AppState::new(config.inject.clone());
    let reloader = Reloader::load(
        config.tls_cert.clone(),
        config.tls_key.clone(),
        state.metrics(),
    )
    .await?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(reloader.store())?));
    let reload_task = reloader.spawn(config.tls_reload);
    let app = router(state.clone(), config.request_timeout);
    let graceful = GracefulShutdown::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving the admission webhook over HTTPS");
    }

    let stop_accepting = async {
        shutdown.await;
        state.set_ready(false);
        info!(delay = ?config.shutdown_delay, "shutting down: not ready, still serving");
        tokio::time::sleep(config.shutdown_delay).await;
    };
    tokio::pin!(stop_accepting);
    loop {
        tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => spawn_connection(tcp, peer, &acceptor, &app, graceful.watcher()),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drain(graceful, config.shutdown_grace).await;
    reload_task.abort();
    Ok(())
}

/// Finish requests in flight, waiting at most `grace`.
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    info!(?grace, "stopped accepting; draining connections");
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(grace) => warn!("grace period over; closing remaining connections"),
    }
}

/// Handshake and serve one connection on its own task.
fn spawn_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    app: &axum::Router,
    watcher: Watcher,
) {
    let acceptor = acceptor.clone();
    let service = TowerToHyperService::new(app.clone());
    let span = info_span!("conn", %peer);
    tokio::spawn(
        async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
                Err(_) => return debug!("TLS handshake timed out"),
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                debug!(error = %e, "connection ended with an error");
            }
        }
        .instrument(span),
    );
}
