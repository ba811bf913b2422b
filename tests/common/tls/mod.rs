//! Certificates generated with rcgen and an HTTPS client over real sockets.
//!
//! - [`Ca`] issues leaf and intermediate certificates for `localhost`;
//! - [`SecretDir`] lays files out the way kubelet mounts a Secret (`tls.crt`
//!   → `..data/tls.crt` → `..<generation>/tls.crt`) and rotates them the way
//!   kubelet does, by atomically swapping the `..data` symlink;
//! - [`Client`] opens TLS connections that trust one CA and records the
//!   certificate the server presented, and [`Conn`] sends HTTP/1.1 or HTTP/2
//!   requests on one kept-alive connection;
//! - [`server`] runs the webhook in-process behind such a certificate.

pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate authority that signs certificates for `localhost`.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A serving certificate: the chain to put in `tls.crt`, and its key.
pub struct Leaf {
    /// Leaf first, then any intermediates.
    pub chain_pem: String,
    pub key_pem: String,
    /// DER of the leaf, to recognise it on the client side.
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("generate a CA key");
        let params = ca_params(name);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one; its leaves carry it in their chain.
    pub fn intermediate(&self, name: &str) -> (Self, String) {
        let key = KeyPair::generate().expect("generate an intermediate key");
        let params = ca_params(name);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the intermediate");
        let pem = cert.pem();
        (
            Self {
                pem: pem.clone(),
                issuer: Issuer::new(params, key),
            },
            pem,
        )
    }

    /// A leaf for `localhost` and 127.0.0.1; `chain` is appended to its PEM.
    pub fn leaf(&self, chain: &str) -> Leaf {
        let key = KeyPair::generate().expect("generate a leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf names");
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        Leaf {
            chain_pem: format!("{}{chain}", cert.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
}

/// Certificate files laid out like a kubelet-mounted Secret volume.
pub struct SecretDir {
    pub dir: TempDir,
    generation: usize,
}

impl SecretDir {
    pub fn new(cert_pem: &str, key_pem: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut this = Self { dir, generation: 0 };
        this.rotate(cert_pem, key_pem);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), this.dir.path().join(name))
                .expect("file symlink");
        }
        this
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// Write a new generation directory and swap `..data` to it atomically
    /// (symlink under a temporary name, then rename over), as kubelet does.
    pub fn rotate(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let root = self.dir.path();
        let generation = format!("..2025_01_01_00_00_00.{}", self.generation);
        std::fs::create_dir(root.join(&generation)).expect("generation dir");
        std::fs::write(root.join(&generation).join("tls.crt"), cert_pem).expect("write cert");
        std::fs::write(root.join(&generation).join("tls.key"), key_pem).expect("write key");
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &tmp).expect("temp symlink");
        std::fs::rename(&tmp, root.join("..data")).expect("swap ..data");
    }
}

/// Connects to one server address, trusting one CA.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    connector: TlsConnector,
}

/// Which TLS version and HTTP protocol a [`Client`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1Tls13,
    Http1Tls12,
    Http2,
    /// TLS 1.3 without ALPN: the server must sniff the protocol.
    NoAlpn,
}

impl Client {
    /// [`Conn::review`] on a new connection.
    pub async fn review(&self, review: &serde_json::Value) -> serde_json::Value {
        self.connect().await.expect("connect").review(review).await
    }

    pub fn new(addr: SocketAddr, ca_pem: &str, proto: Proto) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let versions: &[&rustls::SupportedProtocolVersion] = match proto {
            Proto::Http1Tls12 => &[&rustls::version::TLS12],
            _ => &[&rustls::version::TLS13],
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Full handshakes only: a resumed session shows the certificate of
        // the session it resumes, not the one the server holds now.
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = match proto {
            Proto::Http2 => vec![b"h2".to_vec()],
            Proto::NoAlpn => Vec::new(),
            _ => vec![b"http/1.1".to_vec()],
        };
        Self {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// A TLS stream to the server (handshake done).
    pub async fn tls(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        self.connector.connect(name, tcp).await
    }

    /// A kept-alive HTTP connection, HTTP/2 when the server agreed to it.
    pub async fn connect(&self) -> Result<Conn, String> {
        let tls = self.tls().await.map_err(|e| format!("tls: {e}"))?;
        let (_, session) = tls.get_ref();
        let peer_leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("http1 handshake: {e}"))?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(Conn {
            sender,
            peer_leaf,
            h2,
        })
    }

    /// One request on a fresh connection.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.connect().await?.post(path, content_type, body).await
    }

    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        self.connect().await?.get(path).await
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One open connection.
pub struct Conn {
    sender: Sender,
    /// DER of the leaf certificate the server presented.
    pub peer_leaf: Vec<u8>,
    pub h2: bool,
}

impl Conn {
    /// POST `review` as JSON to `/mutate`, assert HTTP 200 and return the
    /// AdmissionReview's `response`.
    pub async fn review(&mut self, review: &serde_json::Value) -> serde_json::Value {
        let body = serde_json::to_vec(review).expect("serialize the review");
        let (status, body) = self
            .post("/mutate", "application/json", body)
            .await
            .expect("POST /mutate");
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        server::response(&body)
    }

    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        let req = Request::post(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), String> {
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                *req.version_mut() = hyper::Version::HTTP_2;
                req.headers_mut().remove("host");
                let uri = format!("https://localhost{}", req.uri());
                *req.uri_mut() = uri.parse().map_err(|e| format!("uri: {e}"))?;
                s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}
