//! The webhook side of the demo: a CA and serving certificate from
//! `s3-seed certs`' generator, the real server on 127.0.0.1:0 (started and
//! reached through the test suite's TLS helpers, `tests/common/tls/`), and an
//! AdmissionReview POSTed to it over HTTPS, trusting only that CA.

use anyhow::{Result, ensure};
use s3_seed::webhook::InjectConfig;
use serde_json::Value;

use crate::tls::SecretDir;
use crate::tls::server::{Running, config, start};

/// The running webhook, and the directory holding its certificate files.
pub struct Webhook {
    pub running: Running,
    _secret: SecretDir,
}

/// Start the webhook. The image name only labels the injected container
/// (nothing is pulled here); every other setting is the default.
pub async fn start_webhook() -> Result<(Webhook, String)> {
    let certs = s3_seed::certs::generate(&["localhost".to_owned()], 1)?;
    let secret = SecretDir::new(&certs.cert_pem, &certs.key_pem);
    let mut server = config(&secret);
    server.inject = InjectConfig {
        image: "s3-seed:demo".to_owned(),
        ..InjectConfig::default()
    };
    let running = start(server, &certs.ca_cert_pem).await;
    let note = format!(
        "https://localhost:{} (certificate from `s3-seed certs`' generator)",
        running.client.addr.port()
    );
    let webhook = Webhook {
        running,
        _secret: secret,
    };
    Ok((webhook, note))
}

/// POST the review to /mutate; returns the AdmissionReview's `response`
/// after checking that it echoes the uid and allows the StatefulSet.
pub async fn post_review(webhook: &Webhook, review: &Value) -> Result<Value> {
    let response = webhook.running.client.review(review).await;
    let uid = &review["request"]["uid"];
    ensure!(
        response["uid"] == *uid,
        "the response does not echo uid {uid}"
    );
    ensure!(
        response["allowed"] == Value::Bool(true),
        "the webhook denied the StatefulSet: {}",
        response["status"]["message"]
    );
    Ok(response)
}
