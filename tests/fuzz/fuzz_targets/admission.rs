//! Arbitrary bytes as the body of `POST /mutate`, through the webhook's own
//! axum router (in process, no socket). Whatever the bytes, the answer is
//! well formed: 200 (only for a body that is JSON by the grammar) with a
//! JSON AdmissionReview whose `response.uid` echoes the request's uid, or a
//! 4xx/5xx with a short plain-text reason. A patch, when there is one,
//! applies (strict RFC 6902) to the object that was sent, and the webhook
//! asks for no further change to its own output.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use s3_seed::webhook::{AppState, Decision, InjectConfig, review, router};
use serde::de::IgnoredAny;
use serde_json::Value;
use tower::ServiceExt;

/// Longest reason a refusal or denial may carry: values are quoted as
/// excerpts, so a message never grows with the input.
const MAX_MESSAGE: usize = 2048;

struct Harness {
    rt: tokio::runtime::Runtime,
    app: Router,
    cfg: InjectConfig,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime"),
        app: router(
            AppState::new(InjectConfig::default()),
            Duration::from_secs(30),
        ),
        cfg: InjectConfig::default(),
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let request = Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, data.len())
        .body(Body::from(data.to_vec()))
        .expect("request");
    let (status, content_type, body) = h.rt.block_on(async {
        let response = h.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = response.into_body().collect().await.expect("body");
        (status, content_type, body.to_bytes())
    });
    if status == StatusCode::OK {
        assert_eq!(
            content_type.as_ref().map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        // JSON by the grammar: UTF-8, and structure and escapes at any
        // depth (what serde_json checks when it skips a value). Decoded as
        // a whole only where every string and number decodes too: a lone
        // surrogate escape or a number out of range is grammatical.
        let grammatical =
            std::str::from_utf8(data).is_ok() && serde_json::from_slice::<IgnoredAny>(data).is_ok();
        assert!(grammatical, "a 200 answers a body that is JSON");
        let sent: Uid = serde_json::from_slice(data).expect("a 200 answers a request with a uid");
        let whole: Option<Value> = serde_json::from_slice(data).ok();
        check_review(h, &sent.request.uid, whole.as_ref(), &body);
    } else {
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{status}"
        );
        let text = std::str::from_utf8(&body).expect("a refusal is text");
        check_message(text);
    }
});

/// The request's uid, all a review needs to decode of the envelope.
#[derive(serde::Deserialize)]
struct Uid {
    request: UidOnly,
}

#[derive(serde::Deserialize)]
struct UidOnly {
    uid: String,
}

/// A 200 body: an AdmissionReview for the request with `uid`; with the
/// request decoded as a whole (`sent`), its patch is applied and sent back.
fn check_review(h: &Harness, uid: &str, sent: Option<&Value>, body: &[u8]) {
    let answer: Value = serde_json::from_slice(body).expect("a 200 body is JSON");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = &answer["response"];
    assert_eq!(response["uid"].as_str(), Some(uid), "uid echoed");
    let allowed = response["allowed"].as_bool().expect("response.allowed");
    if !allowed {
        let message = response["status"]["message"]
            .as_str()
            .expect("a denial has a message");
        assert!(!message.is_empty());
        check_message(message);
        assert!(response.get("patch").is_none(), "a denial has no patch");
        return;
    }
    let Some(patch) = response.get("patch") else {
        return;
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = BASE64
        .decode(patch.as_str().expect("patch is base64 text"))
        .expect("patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch is a JSON Patch");
    assert!(!patch.0.is_empty(), "an empty patch is not sent");
    let Some(sent) = sent else {
        return;
    };
    let mut object = sent["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to the object sent");
    // The webhook's own output, sent back, needs no further change.
    let mut again = sent.clone();
    again["request"]["object"] = object;
    let again = serde_json::to_vec(&again).expect("json");
    let again = review(&again, &h.cfg);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.decision,
        Decision::Allowed,
        "not idempotent: {:?}",
        String::from_utf8_lossy(&again.body)
    );
}

/// A reason shown to a user or written to a log: bounded and one line.
fn check_message(message: &str) {
    assert!(message.len() <= MAX_MESSAGE, "{} bytes", message.len());
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}
