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
//! `request.object` is taken out of the review as raw JSON before the rest is
//! deserialized, so the object is never round-tripped through typed structs
//! and a malformed object becomes a denial with the uid, not a 400.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use kube::core::{DynamicObject, Status};
use serde_json::Value;

use super::InjectConfig;
use super::mutate::mutate;

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
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Patched => "patched",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
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

/// Answer one AdmissionReview body.
pub fn review(body: &[u8], cfg: &InjectConfig) -> Reviewed {
    let (req, object) = match parse(body) {
        Ok(parsed) => parsed,
        Err(reason) => return rejected(reason),
    };
    let (response, decision) = decide(&req, object, cfg);
    let reason = (!response.allowed).then(|| response.result.message.clone());
    let body = match encode(response) {
        Ok(body) => body,
        Err(e) => return rejected(format!("cannot serialize the response: {e}")),
    };
    Reviewed {
        status: StatusCode::OK,
        body,
        decision,
        uid: req.uid.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: req.name.clone(),
        operation: operation_name(&req.operation),
        reason,
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

/// Split the body into the typed request and the raw `request.object`.
fn parse(body: &[u8]) -> Result<(AdmissionRequest<DynamicObject>, Value), String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let kind = value.get("kind").and_then(Value::as_str);
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    if kind != Some(META_KIND) || api_version != Some(META_API_VERSION_V1) {
        return Err(format!(
            "request body is not an {META_API_VERSION_V1} {META_KIND} (kind {kind:?}, apiVersion {api_version:?})"
        ));
    }
    let request = value
        .get_mut("request")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("the {META_KIND} has no request object"))?;
    let object = request.remove("object").unwrap_or(Value::Null);
    request.remove("oldObject");
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(value)
        .map_err(|e| format!("the {META_KIND} request is not valid: {e}"))?;
    let req = review
        .try_into()
        .map_err(|_| format!("the {META_KIND} has no request object"))?;
    Ok((req, object))
}

/// The response for a parsed request, and how to count it.
fn decide(
    req: &AdmissionRequest<DynamicObject>,
    object: Value,
    cfg: &InjectConfig,
) -> (AdmissionResponse, Decision) {
    let allow = AdmissionResponse::from(req);
    if !is_statefulset_write(req) {
        return (allow, Decision::Allowed);
    }
    if !object.is_object() {
        return deny(allow, "request.object is missing or not an object".into());
    }
    match mutate(&object, cfg) {
        Ok(m) if m.is_empty() => (allow, Decision::Allowed),
        Ok(m) => match allow.with_patch(m.patch) {
            Ok(patched) => (patched, Decision::Patched),
            Err(e) => deny(
                AdmissionResponse::from(req),
                format!("cannot encode the patch: {e}"),
            ),
        },
        Err(e) => deny(allow, e.to_string()),
    }
}

/// CREATE or UPDATE of an `apps` StatefulSet itself (not a subresource).
fn is_statefulset_write(req: &AdmissionRequest<DynamicObject>) -> bool {
    matches!(req.operation, Operation::Create | Operation::Update)
        && req.kind.group == "apps"
        && req.kind.kind == "StatefulSet"
        && req.sub_resource.as_deref().unwrap_or_default().is_empty()
}

fn deny(response: AdmissionResponse, message: String) -> (AdmissionResponse, Decision) {
    let mut denied = response.deny(&message);
    denied.result = Status::failure(&message, "BadRequest").with_code(400);
    (denied, Decision::Denied)
}

fn rejected(reason: String) -> Reviewed {
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

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
