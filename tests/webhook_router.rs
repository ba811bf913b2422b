//! The request path without a socket: the axum router driven with
//! `tower::ServiceExt::oneshot`. Table tests for the admission contract, and
//! property tests: arbitrary bytes, arbitrary JSON in any part of a review
//! and arbitrary annotations never panic and always get a valid answer.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use s3_seed::webhook::{AppState, InjectConfig, Limits, router};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app() -> Router {
    router(
        AppState::new(InjectConfig::default()),
        Duration::from_secs(5),
    )
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible router");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

async fn post(app: &Router, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    call(app, "POST", "/mutate", "application/json", body).await
}

/// The response of a 200 answer, checked for the parts the API server needs.
fn admission_response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).expect("a 200 body is JSON");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let resp = review["response"].clone();
    assert!(resp["allowed"].is_boolean(), "{resp}");
    if resp["allowed"] == false {
        let msg = resp["status"]["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "a denial says why: {resp}");
    }
    resp
}

fn apply(object: &Value, resp: &Value) -> Value {
    let mut out = object.clone();
    if !resp["patch"].is_null() {
        let b64 = resp["patch"].as_str().expect("patch is base64 text");
        let bytes = BASE64.decode(b64).expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch JSON");
        json_patch::patch(&mut out, &patch).expect("patch applies");
    }
    out
}

#[tokio::test]
async fn admission_contract_table() {
    let app = app();
    let create = fixture("review-create");
    let uid = create["request"]["uid"].clone();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut r = create.clone();
        edit(&mut r);
        serde_json::to_vec(&r).expect("json")
    };
    // (case, body, status, Some(allowed) for 200 answers)
    let cases: Vec<(&str, Vec<u8>, StatusCode, Option<bool>)> = vec![
        ("create", with(&|_| {}), StatusCode::OK, Some(true)),
        (
            "update fixture",
            {
                let mut update = fixture("review-update");
                update["request"]["uid"] = uid.clone();
                serde_json::to_vec(&update).expect("json")
            },
            StatusCode::OK,
            Some(true),
        ),
        (
            "object missing",
            with(&|r| r["request"]["object"] = Value::Null),
            StatusCode::OK,
            Some(false),
        ),
        (
            "object not a statefulset",
            with(&|r| r["request"]["object"] = json!({"spec": 1})),
            StatusCode::OK,
            Some(false),
        ),
        (
            "connect",
            with(&|r| r["request"]["operation"] = "CONNECT".into()),
            StatusCode::OK,
            Some(true),
        ),
        (
            "v1beta1",
            with(&|r| r["apiVersion"] = "admission.k8s.io/v1beta1".into()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "no request",
            with(&|r| r["request"] = Value::Null),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "uid not a string",
            with(&|r| r["request"]["uid"] = 7.into()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        ("empty", Vec::new(), StatusCode::BAD_REQUEST, None),
    ];
    for (name, body, want, allowed) in cases {
        let (status, body) = post(&app, body).await;
        assert_eq!(status, want, "{name}: {}", String::from_utf8_lossy(&body));
        if let Some(allowed) = allowed {
            let resp = admission_response(&body);
            assert_eq!(resp["uid"], uid, "{name}");
            assert_eq!(resp["allowed"], allowed, "{name}: {resp}");
        } else {
            assert!(!body.is_empty(), "{name}: a 400 says why");
        }
    }
}

/// `s3-seed.io/*` keys on the pod template reach kubectl as warnings, on an
/// object admitted unchanged and on one that is patched.
#[tokio::test]
async fn annotations_on_the_pod_template_come_back_as_warnings() {
    let app = app();
    let create = fixture("review-create");
    for opted_in in [false, true] {
        let mut review = create.clone();
        let object = &mut review["request"]["object"];
        if !opted_in {
            object["metadata"]["annotations"] = json!({});
        }
        object["spec"]["template"]["metadata"]["annotations"] =
            json!({"s3-seed.io/sub-path": "site", "other.example/x": "1"});
        let (status, body) = post(&app, serde_json::to_vec(&review).expect("json")).await;
        assert_eq!(status, StatusCode::OK);
        let resp = admission_response(&body);
        assert_eq!(resp["allowed"], true, "{resp}");
        assert_eq!(resp["patch"].is_null(), !opted_in, "{resp}");
        let warnings = resp["warnings"].as_array().expect("warnings");
        assert_eq!(warnings.len(), 1, "{resp}");
        let warning = warnings[0].as_str().expect("text");
        assert!(
            warning.contains("s3-seed.io/sub-path is ignored on the pod template")
                && warning.contains("move it there"),
            "{warning}"
        );
    }
    let (_, body) = post(&app, serde_json::to_vec(&create).expect("json")).await;
    assert!(
        admission_response(&body)["warnings"].is_null(),
        "no warning without cause"
    );
}

#[tokio::test]
async fn routes_methods_and_probes() {
    let app = app();
    let cases = [
        ("GET", "/healthz", StatusCode::OK),
        ("GET", "/readyz", StatusCode::OK),
        ("GET", "/metrics", StatusCode::OK),
        ("GET", "/mutate", StatusCode::METHOD_NOT_ALLOWED),
        ("POST", "/nope", StatusCode::NOT_FOUND),
    ];
    for (method, path, want) in cases {
        let (status, _) = call(&app, method, path, "application/json", Vec::new()).await;
        assert_eq!(status, want, "{method} {path}");
    }
    let state = AppState::new(InjectConfig::default());
    let app = router(state.clone(), Duration::from_secs(5));
    state.set_ready(false);
    let (status, _) = call(&app, "GET", "/readyz", "", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// The denial message of a review of the create fixture with `annotations`.
async fn denial(app: &Router, annotations: &[(&str, &str)]) -> String {
    let mut review = fixture("review-create");
    for (key, value) in annotations {
        review["request"]["object"]["metadata"]["annotations"][*key] = (*value).into();
    }
    let (status, body) = post(app, serde_json::to_vec(&review).expect("json")).await;
    assert_eq!(status, StatusCode::OK);
    let resp = admission_response(&body);
    assert_eq!(resp["uid"], review["request"]["uid"]);
    assert_eq!(resp["allowed"], false, "{resp}");
    resp["status"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test]
async fn denials_quote_a_short_excerpt_of_a_long_value_and_the_real_reason() {
    let app = app();
    let huge_bucket = format!("s3://{}", "a".repeat(1 << 20));
    let long_region = "a".repeat(5000);
    let long_key = format!("s3-seed.io/{}", "x".repeat(10_000));
    // (annotations, what the denial must say)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("s3-seed.io/source", &huge_bucket)],
            &[
                "annotation s3-seed.io/source: bucket name \"aaaa",
                "…\" (1048576 bytes)",
                "use 3-63 characters",
            ],
        ),
        (
            vec![("s3-seed.io/region", &long_region)],
            &[
                "annotation s3-seed.io/region: ",
                "(5000 bytes)",
                "use 1-64 characters",
            ],
        ),
        (
            vec![("s3-seed.io/region", "EU WEST")],
            &["\"EU WEST\" is not a valid region: use a-z, 0-9 and '-' only"],
        ),
        (
            vec![(&long_key, "x")],
            &["unknown annotation s3-seed.io/xxxx", "… (10011 bytes)"],
        ),
    ];
    for (annotations, needles) in cases {
        let message = denial(&app, &annotations).await;
        assert!(
            message.len() < 300,
            "a long value is cut: {} bytes",
            message.len()
        );
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }
}

#[tokio::test]
async fn a_review_over_the_decode_budget_is_denied_with_its_uid() {
    let limits = Limits {
        decode_budget: 1024 * 1024,
        ..Limits::default()
    };
    let app = router(
        AppState::with_limits(InjectConfig::default(), &limits),
        Duration::from_secs(5),
    );
    let keys: Vec<String> = (0..20_000).map(|i| format!("example.com/k{i}")).collect();
    let mut annotations: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    annotations.push(("s3-seed.io/source", "s3://bucket/p/"));
    let message = denial(&app, &annotations).await;
    assert!(
        message.contains("too large for the s3-seed webhook to review"),
        "{message}"
    );
    assert!(message.contains("decode budget of 1 MiB"), "{message}");
    // The same review fits the default budget and is patched.
    let mut review = fixture("review-create");
    for (key, value) in &annotations {
        review["request"]["object"]["metadata"]["annotations"][*key] = (*value).into();
    }
    let (_, body) = post(&self::app(), serde_json::to_vec(&review).expect("json")).await;
    assert!(admission_response(&body)["patch"].is_string());
}

#[tokio::test]
async fn the_old_object_is_not_decoded_and_need_not_be_a_statefulset() {
    // oldObject is skipped unread: any JSON there (even one nested deeper
    // than serde_json would decode) changes nothing.
    let app = app();
    let mut review = fixture("review-update");
    let (_, want) = post(&app, serde_json::to_vec(&review).expect("json")).await;
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let mut text = serde_json::to_string(&{
        review["request"]["oldObject"] = json!("placeholder");
        review
    })
    .expect("json");
    text = text.replace("\"placeholder\"", &deep);
    let (status, got) = post(&app, text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admission_response(&got), admission_response(&want));
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Pointers into a review where arbitrary JSON is planted.
const PLACES: [&str; 10] = [
    "",
    "/request",
    "/request/object",
    "/request/object/metadata",
    "/request/object/metadata/annotations",
    "/request/object/spec/template",
    "/request/object/spec/template/spec/containers",
    "/request/object/spec/template/spec/initContainers",
    "/request/object/spec/template/spec/volumes",
    "/request/object/spec/volumeClaimTemplates",
];

fn annotation_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(s3_seed::contract::INPUT_KEYS.to_vec()).prop_map(str::to_owned),
        1 => "s3-seed\\.io/[a-z-]{0,12}",
        1 => "[a-z./-]{1,20}",
    ]
}

fn annotation_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "s3://bucket/p/", "s3://bucket", "data", "logs", "true", "false", "eu-west-1",
            "http://minio:9000", "*.bin", "sub/dir", "/abs", "../up", "",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,24}",
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_get_a_clear_400(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let (status, answer) = runtime().block_on(post(&app(), body));
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{}", status);
        if status == StatusCode::OK {
            admission_response(&answer);
        } else {
            prop_assert!(!answer.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_anywhere_in_a_review_never_panics(
        place in prop::sample::select(PLACES.to_vec()),
        value in json_value(),
    ) {
        let mut review = fixture("review-create");
        match review.pointer_mut(place) {
            Some(slot) => *slot = value,
            None => review = value,
        }
        let (status, answer) = runtime().block_on(post(&app(), serde_json::to_vec(&review).expect("json")));
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{}", status);
        if status == StatusCode::OK {
            let resp = admission_response(&answer);
            prop_assert_eq!(&resp["uid"], &review["request"]["uid"]);
        }
    }

    #[test]
    fn arbitrary_annotations_are_admitted_or_denied_with_the_uid(
        source in prop::option::weighted(0.8, Just("s3://bucket/p/")),
        extra in prop::collection::btree_map(annotation_key(), annotation_value(), 0..5),
    ) {
        let mut annotations: BTreeMap<String, String> = source
            .map(|s| ("s3-seed.io/source".to_owned(), s.to_owned()))
            .into_iter()
            .collect();
        annotations.extend(extra);
        let mut review = fixture("review-create");
        review["request"]["object"]["metadata"]["annotations"] =
            serde_json::to_value(&annotations).expect("map");
        let app = app();
        let rt = runtime();
        let (status, answer) = rt.block_on(post(&app, serde_json::to_vec(&review).expect("json")));
        prop_assert_eq!(status, StatusCode::OK);
        let resp = admission_response(&answer);
        prop_assert_eq!(&resp["uid"], &review["request"]["uid"]);
        let opted_in = annotations.contains_key("s3-seed.io/source");
        if resp["allowed"] == true && !resp["patch"].is_null() {
            prop_assert!(opted_in);
            // The stored object goes through the webhook again unchanged.
            let stored = apply(&review["request"]["object"], &resp);
            let first = &stored["spec"]["template"]["spec"]["initContainers"][0]["name"];
            prop_assert_eq!(first, "s3-seed");
            review["request"]["object"] = stored;
            let (_, again) = rt.block_on(post(&app, serde_json::to_vec(&review).expect("json")));
            let again = admission_response(&again);
            prop_assert!(again["allowed"] == true && again["patch"].is_null(), "{}", again);
        }
        let unknown: BTreeMap<_, _> = annotations
            .iter()
            .filter(|(k, _)| k.starts_with("s3-seed.io/") && !s3_seed::contract::INPUT_KEYS.contains(&k.as_str()) && *k != "s3-seed.io/status")
            .collect();
        if !unknown.is_empty() {
            prop_assert_eq!(&resp["allowed"], false, "unknown keys must be denied: {:?}", unknown);
        }
    }
}
