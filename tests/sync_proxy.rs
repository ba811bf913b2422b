//! The binary's S3 client goes through the proxy named by the environment:
//! `HTTP_PROXY` for an `http://` endpoint (absolute-form requests),
//! `HTTPS_PROXY` for an `https://` one (a CONNECT tunnel, TLS end to end),
//! and `NO_PROXY` bypasses it. The proxy is a small forward proxy on
//! 127.0.0.1 that relays to the in-process S3 server and counts what it saw.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::s3::S3Server;
use common::sync::run_binary;
use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A forward proxy that sends every connection to `upstream`.
struct Proxy {
    url: String,
    /// Plain requests relayed (absolute-form, for `http://` targets).
    plain: Arc<AtomicU64>,
    /// CONNECT tunnels opened (for `https://` targets).
    tunnels: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let (plain, tunnels) = (Arc::default(), Arc::default());
        let counters = (Arc::clone(&plain), Arc::clone(&tunnels));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = (Arc::clone(&counters.0), Arc::clone(&counters.1));
                tokio::spawn(relay(client, upstream, counters));
            }
        });
        Proxy {
            url,
            plain,
            tunnels,
            task,
        }
    }

    fn seen(&self) -> (u64, u64) {
        (
            self.plain.load(Ordering::SeqCst),
            self.tunnels.load(Ordering::SeqCst),
        )
    }
}

/// Read the request head; answer a CONNECT and tunnel, or forward the head
/// as it came and relay. Errors just end the connection.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    (plain, tunnels): (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if head.starts_with(b"CONNECT ") {
        tunnels.fetch_add(1, Ordering::SeqCst);
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else {
        plain.fetch_add(1, Ordering::SeqCst);
        if server.write_all(&head).await.is_err() {
            return;
        }
    }
    let _ = copy_bidirectional(&mut client, &mut server).await;
}

fn upstream(s3: &S3Server) -> SocketAddr {
    let endpoint = s3.endpoint();
    let authority = endpoint.rsplit("://").next().expect("an endpoint URL");
    authority
        .parse()
        .expect("the harness listens on 127.0.0.1:PORT")
}

/// Sync `p/` of `s3` into `target` with `env` and expect `p/a` there as `want`.
async fn sync_through(s3: &S3Server, target: &Path, env: &[(&str, &str)], want: &[u8]) {
    let out = run_binary(s3, "p/", target, env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(target.join("a")).unwrap(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoint_goes_through_http_proxy_unless_no_proxy() {
    let s3 = S3Server::start().await;
    s3.put("p/a", b"through the proxy").await;
    let proxy = Proxy::start(upstream(&s3)).await;
    let dir = tempfile::tempdir().unwrap();

    let via = [("HTTP_PROXY", proxy.url.as_str())];
    sync_through(&s3, &dir.path().join("one"), &via, b"through the proxy").await;
    let (plain, tunnels) = proxy.seen();
    assert!(plain >= 1, "the proxy saw no request");
    assert_eq!(tunnels, 0, "an http:// endpoint needs no tunnel");

    let bypass = [
        ("HTTP_PROXY", proxy.url.as_str()),
        ("NO_PROXY", "127.0.0.1"),
    ];
    sync_through(&s3, &dir.path().join("two"), &bypass, b"through the proxy").await;
    assert_eq!(proxy.seen(), (plain, 0), "NO_PROXY must bypass the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoint_tunnels_through_https_proxy() {
    let s3 = S3Server::start_tls().await;
    s3.put("p/a", b"tunnelled").await;
    let proxy = Proxy::start(upstream(&s3)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, s3.ca_pem().expect("an HTTPS server")).unwrap();

    let env = [
        ("HTTPS_PROXY", proxy.url.as_str()),
        ("AWS_CA_BUNDLE", ca.to_str().unwrap()),
    ];
    sync_through(&s3, &dir.path().join("data"), &env, b"tunnelled").await;
    let (plain, tunnels) = proxy.seen();
    assert!(tunnels >= 1, "no CONNECT tunnel was opened");
    assert_eq!(plain, 0, "TLS traffic must not be sent as plain requests");
}
