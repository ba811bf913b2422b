//! `s3-seed controller`: change-driven rollouts. It watches StatefulSets
//! that opt in with `s3-seed.io/rollout: on-change`, polls each one's source
//! the way its init container would list it, and when the source's revision
//! changes, writes the new revision to the pod template, so the
//! StatefulSet's own rolling update replaces the pods (which sync the new
//! source in their init container).
//!
//! Built on kube's runtime, with no loop of its own: a [`Controller`] over
//! every StatefulSet (a watcher and its reflector [`Store`]) calls
//! [`reconcile::reconcile`] for each change and each requeue. Inside:
//! - [`decide`]: the pure decision (record, roll out, wait, and why);
//! - [`revision`]: the revision and what changed, from the shared selection;
//! - [`poll`]: one listing of a source, with its credentials;
//! - [`secrets`]: the credentials read from Secrets, kept between polls;
//! - [`tracked`]: what is remembered between reconciles (in memory only;
//!   what must survive a restart is on the StatefulSet);
//! - [`metrics`]: Prometheus counters, served with `/healthz`.
//!
//! One replica is enough and is what the manifests run: the controller holds
//! no state that a restart loses beyond a poll, and every write is a patch
//! with a resourceVersion precondition of an idempotent value, so even two
//! replicas that overlap during a Deployment update cannot roll one change
//! twice. That is why there is no leader election.

pub mod config;
pub mod decide;
pub mod error;
pub mod metrics;
pub mod poll;
pub mod reconcile;
pub mod revision;
pub mod secrets;
pub mod tracked;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::net::TcpListener;

pub use config::ControllerConfig;
pub use error::ControllerError;
pub use metrics::Metrics;

use metrics::CONTENT_TYPE;

use poll::Poller;
use tracked::Memory;

/// The controller's name in Events.
pub const REPORTER: &str = "s3-seed-controller";
/// The User-Agent of its requests to the API server.
pub const USER_AGENT: &str = concat!("s3-seed/", env!("CARGO_PKG_VERSION"), " (controller)");

/// What every reconcile shares.
pub struct Context {
    pub kube: Client,
    pub cfg: ControllerConfig,
    pub poller: Poller,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Every StatefulSet, as the watcher last saw it.
    pub store: Store<StatefulSet>,
    memory: Mutex<Memory>,
    /// Held while a rollout may be started (see [`reconcile`]).
    gate: tokio::sync::Mutex<()>,
}

impl Context {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop what is remembered of a StatefulSet that opted out.
    fn forget(&self, key: &ObjectRef<StatefulSet>) {
        let mut memory = self.memory();
        if memory.remove(key).is_some() {
            self.metrics.set_watched(memory.len());
        }
    }

    /// Drop what is remembered of deleted StatefulSets.
    fn prune(&self) {
        let mut memory = self.memory();
        memory.retain(|key, _| self.store.get(key).is_some());
        self.metrics.set_watched(memory.len());
    }
}

/// Run until SIGTERM or SIGINT: serve the metrics on `cfg.metrics_listen`
/// and reconcile every StatefulSet the client can see.
pub async fn run(cfg: ControllerConfig, kube: Client) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind(cfg.metrics_listen)
        .await
        .map_err(|error| ControllerError::Bind {
            addr: cfg.metrics_listen,
            error,
        })?;
    let bound = listener.local_addr().map_err(ControllerError::Serve)?;
    tracing::info!(addr = %bound, "serving /metrics and /healthz");
    let server = tokio::spawn(serve(listener, Arc::clone(&metrics)));
    let api: Api<StatefulSet> = match &cfg.namespace {
        Some(namespace) => Api::namespaced(kube.clone(), namespace),
        None => Api::all(kube.clone()),
    };
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(cfg.concurrency));
    let reporter = Reporter {
        controller: REPORTER.to_owned(),
        instance: cfg.instance.clone(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(kube.clone(), reporter),
        poller: Poller::new(kube.clone(), cfg.clone()),
        kube,
        store: controller.store(),
        metrics,
        memory: Mutex::new(Memory::new()),
        gate: tokio::sync::Mutex::new(()),
        cfg,
    });
    let pruner = tokio::spawn(prune_every(Arc::clone(&ctx)));
    controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
    pruner.abort();
    server.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn prune_every(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(ctx.cfg.poll_interval);
    loop {
        tick.tick().await;
        ctx.prune();
    }
}

async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> Result<(), ControllerError> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }),
        )
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app)
        .await
        .map_err(ControllerError::Serve)
}
