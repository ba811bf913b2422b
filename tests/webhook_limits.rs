//! The webhook's limits over real TLS sockets: idle connections are closed,
//! the connection limit holds, review bodies wait for the budget and are
//! refused with 503 when it stays full, and a refused body still reaches a
//! client that writes the whole body before it reads the answer.

mod common;

use std::time::Duration;

use common::tls::server::{config, fixture, one_pki, start};
use common::tls::{Client, Proto};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

const MIB: usize = 1024 * 1024;

/// True when the peer closed the stream (EOF or an error) within `within`;
/// whatever it sent before (HTTP/2 SETTINGS, GOAWAY) is read and dropped.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, closed).await.is_ok()
}

/// The status line and headers of one HTTP/1.1 answer, and its body.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Result<(String, Vec<u8>), String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) => {
                return Err(format!(
                    "closed before an answer: {:?}",
                    String::from_utf8_lossy(&data)
                ));
            }
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read body: {e}")),
        }
    }
    Ok((head, data[head_end..].to_vec()))
}

fn head(length: usize, extra: &str) -> String {
    format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    )
}

/// A valid CREATE review padded with trailing spaces to `size` bytes.
fn review_of_size(uid: &str, size: usize) -> Vec<u8> {
    let mut review = fixture("review-create");
    review["request"]["uid"] = uid.into();
    let mut body = serde_json::to_vec(&review).expect("json");
    assert!(body.len() <= size);
    body.resize(size, b' ');
    body
}

async fn write_all(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_timeout_whatever_their_protocol() {
    let (ca, dir) = one_pki();
    let mut cfg = config(&dir);
    let idle = Duration::from_millis(400);
    cfg.limits.idle_timeout = idle;
    let server = start(cfg, &ca.pem).await;
    let addr = server.client.addr;

    // Handshake done, then nothing: each way of choosing the protocol.
    for proto in [Proto::Http1Tls13, Proto::Http2, Proto::NoAlpn] {
        let mut tls = Client::new(addr, &ca.pem, proto).tls().await.expect("tls");
        let opened = Instant::now();
        assert!(
            closed_within(&mut tls, idle + Duration::from_secs(3)).await,
            "{proto:?}: an idle connection stayed open"
        );
        assert!(
            opened.elapsed() >= idle - Duration::from_millis(50),
            "{proto:?}: closed early"
        );
    }

    // A few bytes of the HTTP/2 preface, never the rest (the protocol sniff
    // waits for 24 bytes).
    let mut tls = Client::new(addr, &ca.pem, Proto::NoAlpn)
        .tls()
        .await
        .expect("tls");
    write_all(&mut tls, b"PRI * HTTP")
        .await
        .expect("partial preface");
    assert!(
        closed_within(&mut tls, idle + Duration::from_secs(3)).await,
        "a partial preface held the connection"
    );

    // HTTP/2 after a request: idle again, closed with GOAWAY.
    let mut h2 = Client::new(addr, &ca.pem, Proto::Http2)
        .connect()
        .await
        .expect("h2");
    assert!(h2.h2);
    assert_eq!(h2.get("/healthz").await.expect("healthz").0, StatusCode::OK);
    tokio::time::sleep(idle + Duration::from_secs(1)).await;
    assert!(
        h2.get("/healthz").await.is_err(),
        "the idle HTTP/2 connection is still open"
    );

    let (_, metrics) = server.client.get("/metrics").await.expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    let closed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3_seed_connections_closed_idle_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no idle counter in\n{metrics}"));
    assert!(closed >= 5, "{closed} idle closes counted:\n{metrics}");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_request_slower_than_the_idle_timeout_is_not_cut() {
    let (ca, dir) = one_pki();
    let mut cfg = config(&dir);
    cfg.limits.idle_timeout = Duration::from_millis(300);
    let server = start(cfg, &ca.pem).await;
    let body = review_of_size("slow", 64 * 1024);
    let mut tls = server.client.tls().await.expect("tls");
    write_all(&mut tls, head(body.len(), "").as_bytes())
        .await
        .expect("head");
    write_all(&mut tls, &body[..1000])
        .await
        .expect("start of body");
    tokio::time::sleep(Duration::from_millis(900)).await;
    write_all(&mut tls, &body[1000..])
        .await
        .expect("rest of body");
    let (head, answer) = read_answer(&mut tls).await.expect("answer");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains(r#""uid":"slow""#));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_connection_limit_holds_and_a_waiting_client_gets_the_next_free_slot() {
    let (ca, dir) = one_pki();
    let mut cfg = config(&dir);
    cfg.limits.max_connections = 2;
    let server = start(cfg, &ca.pem).await;
    let client = server.client.clone();
    let mut held = vec![
        client.tls().await.expect("first"),
        client.tls().await.expect("second"),
    ];
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were open (limit 2)"
    );
    drop(held.pop());
    let mut third = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting client gets the freed slot")
        .expect("task")
        .expect("handshake");
    assert_eq!(
        third.get("/healthz").await.expect("served").0,
        StatusCode::OK
    );
    drop((held, third));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn bodies_wait_for_the_budget_then_get_503_with_retry_after() {
    let (ca, dir) = one_pki();
    let mut cfg = config(&dir);
    cfg.limits.body_budget = 8 * MIB;
    cfg.limits.queue_wait = Duration::from_millis(800);
    let server = start(cfg, &ca.pem).await;
    let client = server.client.clone();

    // A takes 6 of the 8 MiB and sends only half of its body for now.
    let a_body = review_of_size("a", 6 * MIB);
    let mut a = client.tls().await.expect("tls");
    write_all(&mut a, head(a_body.len(), "").as_bytes())
        .await
        .expect("head");
    write_all(&mut a, &a_body[..MIB]).await.expect("part");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // B needs 3 MiB: it waits, and is refused when the wait is over.
    let b_body = review_of_size("b", 3 * MIB);
    let mut b = client.tls().await.expect("tls");
    let started = Instant::now();
    write_all(&mut b, head(b_body.len(), "").as_bytes())
        .await
        .expect("head");
    write_all(&mut b, &b_body).await.expect("B's whole body");
    let (b_head, _) = read_answer(&mut b).await.expect("B answered");
    assert!(b_head.starts_with("http/1.1 503"), "{b_head}");
    assert!(b_head.contains("retry-after: 1"), "{b_head}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "B did not wait"
    );

    // C waits too, and is served as soon as A is done.
    let c_body = review_of_size("c", 3 * MIB);
    let c_task = tokio::spawn({
        let client = client.clone();
        async move {
            let mut c = client.tls().await.expect("tls");
            write_all(&mut c, head(c_body.len(), "").as_bytes())
                .await
                .expect("head");
            write_all(&mut c, &c_body).await.expect("C's body");
            read_answer(&mut c).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !c_task.is_finished(),
        "C was served while A held the budget"
    );
    write_all(&mut a, &a_body[MIB..]).await.expect("rest of A");
    let (a_head, a_answer) = read_answer(&mut a).await.expect("A answered");
    assert!(a_head.starts_with("http/1.1 200"), "{a_head}");
    assert!(String::from_utf8_lossy(&a_answer).contains(r#""uid":"a""#));
    let (c_head, c_answer) = c_task.await.expect("task").expect("C answered");
    assert!(c_head.starts_with("http/1.1 200"), "{c_head}");
    assert!(String::from_utf8_lossy(&c_answer).contains(r#""uid":"c""#));

    let (_, metrics) = client.get("/metrics").await.expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"s3_seed_admissions_total{operation="none",outcome="busy"} 1"#),
        "{metrics}"
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_refused_body_reaches_a_client_that_writes_it_whole_before_reading() {
    let (ca, dir) = one_pki();
    let server = start(config(&dir), &ca.pem).await;
    let client = &server.client;
    let too_big = vec![b' '; 8 * MIB];

    // Content-Length over the limit; the client writes everything first
    // (as curl --data-binary and Go's net/http do).
    let mut tls = client.tls().await.expect("tls");
    write_all(&mut tls, head(too_big.len(), "").as_bytes())
        .await
        .expect("head");
    write_all(&mut tls, &too_big)
        .await
        .expect("the server reads the whole body instead of resetting the connection");
    let (answer, reason) = read_answer(&mut tls).await.expect("the 413 arrives");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(
        String::from_utf8_lossy(&reason).contains("limit"),
        "{reason:?}"
    );
    // Drained, so the connection is still usable.
    write_all(
        &mut tls,
        b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await
    .expect("next request");
    assert!(
        read_answer(&mut tls)
            .await
            .expect("healthz")
            .0
            .starts_with("http/1.1 200")
    );

    // Chunked, no length: refused once the limit is passed, then drained.
    let mut tls = client.tls().await.expect("tls");
    let chunked = "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    write_all(&mut tls, chunked.as_bytes()).await.expect("head");
    for _ in 0..8 {
        write_all(&mut tls, format!("{:x}\r\n", MIB).as_bytes())
            .await
            .expect("chunk size");
        write_all(&mut tls, &too_big[..MIB]).await.expect("chunk");
        write_all(&mut tls, b"\r\n").await.expect("chunk end");
    }
    write_all(&mut tls, b"0\r\n\r\n").await.expect("last chunk");
    let (answer, _) = read_answer(&mut tls).await.expect("the 413 arrives");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");

    // Wrong content type with a body: 415, body drained.
    let mut tls = client.tls().await.expect("tls");
    let text = vec![b'x'; 2 * MIB];
    let plain = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        text.len()
    );
    write_all(&mut tls, plain.as_bytes()).await.expect("head");
    write_all(&mut tls, &text).await.expect("whole body");
    assert!(
        read_answer(&mut tls)
            .await
            .expect("415")
            .0
            .starts_with("http/1.1 415")
    );

    // Expect: 100-continue: answered at once, the body is never sent.
    let mut tls = client.tls().await.expect("tls");
    write_all(
        &mut tls,
        head(too_big.len(), "expect: 100-continue\r\n").as_bytes(),
    )
    .await
    .expect("head");
    let (answer, _) = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut tls))
        .await
        .expect("answered without the body")
        .expect("answer");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn limits_that_could_never_serve_fail_startup_naming_the_flag() {
    let (_ca, dir) = one_pki();
    s3_seed::cli::install_crypto_provider();
    let mut small_budget = config(&dir);
    small_budget.limits.body_budget = MIB;
    let mut no_connections = config(&dir);
    no_connections.limits.max_connections = 0;
    let cases = [
        (small_budget, "--body-budget-mib must be at least 7"),
        (no_connections, "--max-connections must be at least 1"),
    ];
    for (cfg, needle) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let err = s3_seed::webhook::serve_with(listener, cfg, std::future::pending())
            .await
            .expect_err("must not start");
        assert!(err.to_string().contains(needle), "{err}");
    }
}
