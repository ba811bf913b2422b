//! The webhook side of the demo: generate a CA and serving certificate, start
//! the real server on 127.0.0.1:0, and POST an AdmissionReview to it over
//! HTTPS, trusting only that CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use s3_seed::webhook::{InjectConfig, ServerConfig};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The webhook as the demo runs it: the image name only labels the injected
/// container (nothing is pulled here); everything else is the default.
fn inject_config() -> InjectConfig {
    InjectConfig {
        image: "s3-seed:demo".to_owned(),
        ..InjectConfig::default()
    }
}

/// Start the webhook; returns its address, the CA (PEM) and a stop switch.
pub async fn start_webhook(
    dir: PathBuf,
) -> Result<((SocketAddr, String, oneshot::Sender<()>), String)> {
    let certs = s3_seed::certs::generate(&["localhost".to_owned()], 1)?;
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &certs.cert_pem).context("write tls.crt")?;
    std::fs::write(&key, &certs.key_pem).context("write tls.key")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ServerConfig {
        listen: addr,
        tls_cert: cert,
        tls_key: key,
        tls_reload: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        shutdown_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(5),
        inject: inject_config(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = s3_seed::webhook::serve_with(listener, config, shutdown).await {
            eprintln!("webhook stopped: {e}");
        }
    });
    let note = format!(
        "https://localhost:{} (certificate from `s3-seed certs`' generator)",
        addr.port()
    );
    Ok(((addr, certs.ca_cert_pem, stop), note))
}

/// POST the review to /mutate and return the parsed AdmissionReview response.
pub async fn post_review(addr: SocketAddr, ca_pem: &str, review: &Value) -> Result<Value> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr)
        .await
        .context("connect to the webhook")?;
    let stream = TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await
        .context("TLS handshake with the webhook (verified against the generated CA)")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post("/mutate")
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(review)?)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    ensure!(
        status == http::StatusCode::OK,
        "webhook answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let answer: Value =
        serde_json::from_slice(&body).context("parse the AdmissionReview response")?;
    let uid = &review["request"]["uid"];
    ensure!(
        answer["response"]["uid"] == *uid,
        "the response does not echo uid {uid}"
    );
    ensure!(
        answer["response"]["allowed"] == Value::Bool(true),
        "the webhook denied the StatefulSet: {}",
        answer["response"]["status"]["message"]
    );
    Ok(answer)
}
