//! The webhook's life over real TLS: startup with unusable certificate
//! files, certificate rotation under load (kubelet-style symlink swap), and
//! the graceful shutdown.

mod common;

use std::time::Duration;

use common::tls::server::{config, fixture, one_pki, start};
use common::tls::{Ca, SecretDir};
use http::StatusCode;
use s3_seed::webhook::serve_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn unusable_certificate_files_fail_startup_with_the_flag_named() {
    let ca = Ca::new("ca");
    let a = ca.leaf("");
    let b = ca.leaf("");
    let cases = [
        (
            SecretDir::new(&a.chain_pem, &b.key_pem),
            "--tls-key does not belong",
        ),
        (SecretDir::new("not a pem", &a.key_pem), "--tls-cert"),
        (SecretDir::new(&a.chain_pem, "nope"), "--tls-key"),
    ];
    for (dir, needle) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        s3_seed::cli::install_crypto_provider();
        let err = serve_with(listener, config(&dir), std::future::pending())
            .await
            .expect_err("must not start");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[tokio::test]
async fn certificate_rotation_under_load_fails_no_request() {
    let ca = Ca::new("ca");
    let first = ca.leaf("");
    let mut dir = SecretDir::new(&first.chain_pem, &first.key_pem);
    let server = start(config(&dir), &ca.pem).await;
    let body = serde_json::to_vec(&fixture("review-create")).expect("json");

    // A loop of requests: half on one kept-alive connection, half on new ones.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for fresh in [false, true, false, true] {
        let client = server.client.clone();
        let body = body.clone();
        let done = done_rx.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut conn = client.connect().await.expect("connect");
            while !*done.borrow() {
                if fresh {
                    match client.connect().await {
                        Ok(c) => conn = c,
                        Err(e) => {
                            failed.push(e);
                            continue;
                        }
                    }
                }
                match conn.post("/mutate", "application/json", body.clone()).await {
                    Ok((StatusCode::OK, _)) => ok += 1,
                    Ok((status, _)) => failed.push(status.to_string()),
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A bad pair is refused and the old certificate stays.
    let bad = ca.leaf("");
    dir.rotate(&first.chain_pem, &bad.key_pem);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let conn = server.client.connect().await.expect("connect");
    assert_eq!(
        conn.peer_leaf, first.der,
        "a bad pair must not replace the certificate"
    );

    let second = ca.leaf("");
    dir.rotate(&second.chain_pem, &second.key_pem);
    let mut rotated = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let conn = server.client.connect().await.expect("connect");
        if conn.peer_leaf == second.der {
            rotated = true;
            break;
        }
    }
    let (_, metrics) = server.client.get("/metrics").await.expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(
        rotated,
        "new connections must see the new certificate: {metrics}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    done_tx.send(true).expect("stop workers");

    let (mut total, mut failures) = (0, Vec::new());
    for worker in workers {
        let (ok, failed) = worker.await.expect("worker");
        total += ok;
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "failed requests during rotation: {failures:?}"
    );
    assert!(total > 20, "the load loop ran ({total} requests)");

    assert!(
        metrics.contains(r#"s3_seed_tls_reloads_total{result="failure"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"s3_seed_tls_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_reports_not_ready_keeps_serving_then_drains_in_flight_requests() {
    let (ca, dir) = one_pki();
    let mut cfg = config(&dir);
    let delay = Duration::from_millis(1000);
    cfg.shutdown_delay = delay;
    let mut server = start(cfg, &ca.pem).await;
    let c = server.client.clone();
    let mut kept = c.connect().await.expect("connect");
    assert_eq!(kept.get("/readyz").await.expect("readyz").0, StatusCode::OK);

    // A request whose body is only half sent when the shutdown starts.
    let body = serde_json::to_vec(&fixture("review-create")).expect("json");
    let mut slow = c.tls().await.expect("tls");
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    slow.write_all(&body[..body.len() / 2])
        .await
        .expect("half body");
    slow.flush().await.expect("flush");

    let _ = server.stop.take().expect("stop handle").send(());
    let stopped = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // During the delay: not ready, but still serving, old and new connections.
    assert_eq!(
        kept.get("/readyz").await.expect("readyz").0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(c.get("/healthz").await.expect("new conn").0, StatusCode::OK);

    tokio::time::sleep_until(stopped + delay + Duration::from_millis(200)).await;
    // After the delay: no new connections, but the in-flight request finishes.
    assert!(c.get("/healthz").await.is_err(), "must stop accepting");
    slow.write_all(&body[body.len() / 2..])
        .await
        .expect("rest of body");
    slow.flush().await.expect("flush");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""allowed":true"#), "{answer}");
    server.stop().await.expect("clean stop");
}
