//! The admission contract: bytes of an AdmissionReview in, bytes of the
//! answer out, with no I/O, so that the HTTP handler stays thin and every
//! branch can be tested (and fuzzed) without a socket.
//!
//! The rules (kube-core's [`AdmissionResponse`] does the wire format):
//! - a body that is not an `admission.k8s.io/v1` AdmissionReview with a
//!   request gets HTTP 400 and a plain-text reason;
//! - every review that parses gets HTTP 200 and a response carrying the
//!   request's uid: allowed, allowed with a JSON Patch, or denied with a
//!   message the user can act on;
//! - only CREATE and UPDATE of `apps` StatefulSets (not their subresources)
//!   are mutated; everything else is allowed unchanged.
//!
//! Memory: the review decodes only the request fields it reads. `object`
//! stays a slice of the body ([`RawValue`]) that [`plan`] reads from, so the
//! StatefulSet is never decoded whole, and `oldObject` (as large as the
//! object on UPDATE) is skipped without being decoded at all. Between
//! [`prepare`] and [`Prepared::finish`] the caller learns what decoding
//! will cost ([`Prepared::cost`]) and can wait for room first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::{AdmissionResponse, META_API_VERSION_V1, META_KIND, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, Status};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::InjectConfig;
use super::footprint;
use super::mutate::plan;
use crate::excerpt::{Excerpt, shorten_quoted};

/// What happened to one request, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allowed without a patch.
    Allowed,
    /// Allowed with a non-empty patch.
    Patched,
    /// Denied; the message is in the response.
    Denied,
    /// Not a review: answered with a 4xx status.
    Rejected,
    /// Not reviewed because the webhook was at its limits: 503.
    Busy,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Patched => "patched",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
            Self::Busy => "busy",
        }
    }
}

/// The answer to one request body.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// 200 for every review that parsed, 400 otherwise.
    pub status: StatusCode,
    /// JSON AdmissionReview on 200, a plain-text reason otherwise.
    pub body: Vec<u8>,
    pub decision: Decision,
    /// The request's uid, empty when it could not be read.
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// CREATE, UPDATE, DELETE, CONNECT, or empty.
    pub operation: &'static str,
    /// The denial or rejection message.
    pub reason: Option<String>,
}

impl Reviewed {
    /// A body that is no AdmissionReview: 400 with `reason` as plain text.
    pub fn rejected(reason: String) -> Self {
        Reviewed {
            status: StatusCode::BAD_REQUEST,
            body: reason.clone().into_bytes(),
            decision: Decision::Rejected,
            uid: String::new(),
            namespace: String::new(),
            name: String::new(),
            operation: "",
            reason: Some(reason),
        }
    }
}

/// Answer one AdmissionReview body, whatever decoding costs.
pub fn review(body: &[u8], cfg: &InjectConfig) -> Reviewed {
    match prepare(body) {
        Ok(prepared) => prepared.finish(cfg),
        Err(rejected) => *rejected,
    }
}

/// The outer AdmissionReview, with `request` still as text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    api_version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
}

/// The request fields the review reads, required as kube-core requires
/// them. Every other field, `oldObject` included, is skipped undecoded.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    uid: String,
    kind: GroupVersionKind,
    #[allow(dead_code, reason = "required by the contract, not read")]
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    #[allow(dead_code, reason = "required by the contract, not read")]
    user_info: UserInfo,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

/// A request that parsed, before its object is decoded.
#[derive(Debug)]
pub struct Prepared<'a> {
    req: Request<'a>,
    cost: usize,
}

/// Read the envelope and the request fields, and estimate the review's
/// cost; a body that is not a review is answered (400) here.
pub fn prepare(body: &[u8]) -> Result<Prepared<'_>, Box<Reviewed>> {
    // JSON is UTF-8. Checked for the whole body first: the parser does not
    // check the UTF-8 of what it skips (fields of the envelope other than
    // its three). What it skips is still checked as JSON text (structure,
    // escapes) at any depth, but not decoded: a lone surrogate escape or a
    // number out of range there, which the grammar allows, is left alone.
    let body = std::str::from_utf8(body).map_err(|e| {
        rejected(format!(
            "request body is not JSON: not UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let envelope: Envelope<'_> = serde_json::from_str(body).map_err(|e| {
        let what = if e.is_data() {
            "not an AdmissionReview"
        } else {
            "not JSON"
        };
        rejected(format!(
            "request body is {what}: {}",
            shorten_quoted(&e.to_string())
        ))
    })?;
    let text =
        |raw: Option<&RawValue>| raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok());
    let (kind, api_version) = (text(envelope.kind), text(envelope.api_version));
    if kind.as_deref() != Some(META_KIND) || api_version.as_deref() != Some(META_API_VERSION_V1) {
        let show =
            |s: Option<String>| s.map_or("none".to_owned(), |s| Excerpt::new(&s).to_string());
        return Err(rejected(format!(
            "request body is not an {META_API_VERSION_V1} {META_KIND} (kind {}, apiVersion {})",
            show(kind),
            show(api_version)
        )));
    }
    let raw = envelope
        .request
        .filter(|r| r.get() != "null")
        .ok_or_else(|| rejected(format!("the {META_KIND} has no request object")))?;
    let req: Request<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        rejected(format!(
            "the {META_KIND} request is not valid: {}",
            shorten_quoted(&e.to_string())
        ))
    })?;
    let cost = match req.object {
        Some(object) if is_statefulset_write(&req) => footprint::review_cost(object.get()),
        _ => footprint::FIXED,
    };
    Ok(Prepared { req, cost })
}

impl Prepared<'_> {
    /// Estimated peak heap bytes of [`Self::finish`].
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Decide, patch and encode the answer.
    pub fn finish(self, cfg: &InjectConfig) -> Reviewed {
        let (response, decision) = decide(&self.req, cfg);
        self.answer(response, decision)
    }

    /// Deny a review that would cost more than the whole decode budget.
    pub fn too_large(self, budget: usize) -> Reviewed {
        let mib = |b: usize| b.div_ceil(1024 * 1024);
        let message = format!(
            "the StatefulSet is too large for the s3-seed webhook to review: its annotations, pod template metadata, init containers, volumes and container names need about {} MiB of memory, more than the webhook's decode budget of {} MiB (--decode-budget-mib)",
            mib(self.cost),
            mib(budget)
        );
        let response = deny(allow(&self.req.uid), message);
        self.answer(response, Decision::Denied)
    }

    fn answer(self, response: AdmissionResponse, decision: Decision) -> Reviewed {
        let reason = (!response.allowed).then(|| response.result.message.clone());
        let body = match encode(response) {
            Ok(body) => body,
            Err(e) => return *rejected(format!("cannot serialize the response: {e}")),
        };
        let req = self.req;
        Reviewed {
            status: StatusCode::OK,
            body,
            decision,
            operation: operation_name(&req.operation),
            uid: req.uid,
            namespace: req.namespace.unwrap_or_default(),
            name: req.name,
            reason,
        }
    }
}

/// The response as an AdmissionReview, with the patch as base64 text.
///
/// kube-core serializes `patch` (a byte vector) as an array of numbers. The
/// API server would decode that too, but the wire format its own Go types
/// write, and the one documented for webhooks, is a base64 string, which is
/// also a third of the size.
fn encode(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let patch = response.patch.as_deref().map(|p| BASE64.encode(p));
    let mut review = serde_json::to_value(response.into_review())?;
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = Value::String(patch);
    }
    serde_json::to_vec(&review)
}

/// The response for a parsed request, and how to count it.
fn decide(req: &Request<'_>, cfg: &InjectConfig) -> (AdmissionResponse, Decision) {
    let allowed = allow(&req.uid);
    if !is_statefulset_write(req) {
        return (allowed, Decision::Allowed);
    }
    let Some(object) = req.object.filter(|o| o.get().trim_start().starts_with('{')) else {
        let message = "request.object is missing or not an object".to_owned();
        return (deny(allowed, message), Decision::Denied);
    };
    match plan(object.get(), cfg) {
        Ok(p) if p.patch.0.is_empty() => (warn(allowed, p.warnings), Decision::Allowed),
        Ok(p) => match warn(allowed, p.warnings).with_patch(p.patch) {
            Ok(patched) => (patched, Decision::Patched),
            Err(e) => {
                let message = format!("cannot encode the patch: {e}");
                (deny(allow(&req.uid), message), Decision::Denied)
            }
        },
        Err(e) => (deny(allowed, e.to_string()), Decision::Denied),
    }
}

/// `response` with `warnings` for kubectl to print, if there are any.
fn warn(mut response: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

/// An allowing response for `uid` (kube-core builds one only from a typed
/// request, which would decode the objects).
fn allow(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_owned();
    response.allowed = true;
    response.result = Status::default();
    response
}

/// CREATE or UPDATE of an `apps` StatefulSet itself (not a subresource).
fn is_statefulset_write(req: &Request<'_>) -> bool {
    matches!(req.operation, Operation::Create | Operation::Update)
        && req.kind.group == "apps"
        && req.kind.kind == "StatefulSet"
        && req.sub_resource.as_deref().unwrap_or_default().is_empty()
}

fn deny(response: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut denied = response.deny(&message);
    denied.result = Status::failure(&message, "BadRequest").with_code(400);
    denied
}

fn rejected(reason: String) -> Box<Reviewed> {
    Box::new(Reviewed::rejected(reason))
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }))
        .expect("json")
    }

    fn request(object: Value) -> Value {
        serde_json::json!({
            "uid": "u-1", "operation": "UPDATE", "name": "web", "namespace": "shop", "userInfo": {},
            "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "object": object,
            "oldObject": {"huge": vec!["x"; 1000]},
        })
    }

    #[test]
    fn cost_counts_the_object_only_for_statefulset_writes() {
        let object = serde_json::json!({"metadata": {"annotations": {"a": "b".repeat(10_000)}}});
        let write = body(request(object.clone()));
        let prepared = prepare(&write).expect("parses");
        assert!(
            prepared.cost() > footprint::FIXED + 5 * 10_000,
            "{}",
            prepared.cost()
        );
        let mut delete = request(object);
        delete["operation"] = "DELETE".into();
        let delete = body(delete);
        assert_eq!(prepare(&delete).expect("parses").cost(), footprint::FIXED);
    }

    #[test]
    fn too_large_is_a_denial_with_the_uid() {
        let b = body(request(serde_json::json!({"metadata": {}})));
        let answer = prepare(&b).expect("parses").too_large(1024 * 1024);
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.decision, Decision::Denied);
        let review: Value = serde_json::from_slice(&answer.body).expect("json");
        assert_eq!(review["response"]["uid"], "u-1");
        assert_eq!(review["response"]["allowed"], false);
        let message = review["response"]["status"]["message"]
            .as_str()
            .expect("message");
        assert!(message.contains("--decode-budget-mib"), "{message}");
    }

    /// Found by the `admission` fuzz target: invalid UTF-8 in a field the
    /// parser skips (here an unknown field of the envelope) was answered
    /// 200, as if the body were JSON. A lone surrogate escape or a number
    /// out of range there is JSON by the grammar, and skipped.
    #[test]
    fn a_body_that_is_not_utf8_is_refused() {
        let review_json = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request(serde_json::json!({"metadata": {}})),
            "skipped": "ZZZZ",
        });
        let valid = serde_json::to_vec(&review_json).expect("json");
        assert_eq!(
            review(&valid, &InjectConfig::default()).status,
            StatusCode::OK
        );
        let mut b = valid.clone();
        let at = b.windows(4).position(|w| w == b"ZZZZ").expect("marker");
        b[at] = 0xca;
        let answer = review(&b, &InjectConfig::default());
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        let reason = answer.reason.expect("reason");
        assert_eq!(
            reason,
            format!("request body is not JSON: not UTF-8 at byte {at}")
        );
        for skipped in [r#""\ud800zz""#, "1e400"] {
            let text = String::from_utf8(valid.clone()).expect("utf-8");
            let b = text.replace(r#""ZZZZ""#, skipped);
            let answer = review(b.as_bytes(), &InjectConfig::default());
            assert_eq!(answer.status, StatusCode::OK, "{skipped}");
        }
    }

    #[test]
    fn rejections_quote_excerpts_of_values() {
        let long = "K".repeat(10_000);
        let cases = [
            serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": long}),
            serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                               "request": {"uid": long, "operation": long}}),
        ];
        for case in cases {
            let answer = review(
                &serde_json::to_vec(&case).expect("json"),
                &InjectConfig::default(),
            );
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            let reason = answer.reason.expect("reason");
            assert!(reason.len() < 300, "{reason}");
            assert!(reason.contains("(10000 bytes)"), "{reason}");
        }
    }

    /// A fuzz finding: serde quotes an unknown variant as it is, so a DEL
    /// (which JSON allows raw) or a decoded `\n` reached the reason.
    #[test]
    fn rejections_escape_control_characters() {
        for (operation, shown) in [("CREAT\u{7f}E", r"CREAT\u{7f}E"), ("CREAT\nE", r"CREAT\nE")] {
            let case = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                          "request": {"uid": "u", "operation": operation}});
            let answer = review(
                &serde_json::to_vec(&case).expect("json"),
                &InjectConfig::default(),
            );
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            let reason = answer.reason.expect("reason");
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            assert!(
                reason.contains(&format!("unknown variant `{shown}`")),
                "{reason}"
            );
        }
    }
}
