//! A webhook server running in-process on 127.0.0.1 with a certificate from
//! [`Ca`](super::Ca), and helpers to read its AdmissionReview answers.

use std::time::Duration;

use http::StatusCode;
use s3_seed::webhook::{InjectConfig, Limits, ServerConfig, ServerError, serve_with};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Ca, Client, Proto, SecretDir};

pub struct Running {
    pub client: Client,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
    }
}

pub fn config(dir: &SecretDir) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls_cert: dir.cert_path(),
        tls_key: dir.key_path(),
        tls_reload: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        shutdown_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(5),
        limits: Limits::default(),
        inject: InjectConfig {
            image: "registry.example/s3-seed:0.1.0".to_owned(),
            ..InjectConfig::default()
        },
    }
}

pub async fn start(config: ServerConfig, ca_pem: &str) -> Running {
    s3_seed::cli::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(listener, config, async {
        let _ = stopped.await;
    }));
    let client = Client::new(addr, ca_pem, Proto::Http1Tls13);
    for _ in 0..100 {
        if client.get("/healthz").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        client,
        stop: Some(stop),
        task,
    }
}

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

pub fn response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).expect("response is JSON");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    review["response"].clone()
}

/// The object after applying the response's patch (if any).
pub fn patched(object: &Value, response: &Value) -> Value {
    let mut out = object.clone();
    let bytes = response["patch"].as_str().map(|b64| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("the patch is base64 text, as the API server expects")
    });
    if let Some(bytes) = bytes {
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch JSON");
        json_patch::patch(&mut out, &patch).expect("patch applies strictly");
    }
    out
}

pub fn one_pki() -> (Ca, SecretDir) {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf("");
    let dir = SecretDir::new(&leaf.chain_pem, &leaf.key_pem);
    (ca, dir)
}
