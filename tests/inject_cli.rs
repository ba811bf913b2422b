//! `s3-seed inject` run as the real binary: it must print exactly what the
//! webhook would store, keep every other document's text byte for byte, and
//! refuse a whole stream (printing nothing) when one document is denied.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use s3_seed::webhook::{InjectConfig, review};
use serde_json::{Value, json};

const IMAGE: &str = "registry.example/s3-seed:9.9.9";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

/// Run `s3-seed inject` with `args`, feeding `stdin`.
fn inject(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-seed"))
        .arg("inject")
        .args(["--image", IMAGE])
        .args(args)
        .env_remove("S3_SEED_IMAGE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run s3-seed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// What the webhook stores for `object`: its patch, applied.
fn through_webhook(object: &Value) -> Value {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u", "operation": "CREATE", "name": "x", "userInfo": {},
            "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "object": object,
        }
    });
    let cfg = InjectConfig {
        image: IMAGE.to_owned(),
        ..InjectConfig::default()
    };
    let answer = review(&serde_json::to_vec(&body).expect("json"), &cfg);
    let response: Value = serde_json::from_slice(&answer.body).expect("review JSON");
    let mut stored = object.clone();
    if let Some(bytes) = response["response"].get("patch") {
        let b64 = bytes.as_str().expect("patch is base64 text");
        let bytes = BASE64.decode(b64).expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch");
        json_patch::patch(&mut stored, &patch).expect("patch applies");
    }
    stored
}

fn yaml(object: &Value) -> String {
    serde_yaml_ng::to_string(object).expect("yaml")
}

fn docs(stream: &str) -> Vec<&str> {
    stream.split("\n---\n").collect()
}

#[test]
fn yaml_stream_matches_the_webhook_and_keeps_other_documents_verbatim() {
    let annotated = fixture("statefulset-full");
    let mut plain = fixture("statefulset-basic");
    plain["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations")
        .remove("s3-seed.io/source");
    let namespace = "# the namespace comes first\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ml # inline comment\n";
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  on: yes   # YAML 1.1 booleans stay text\n  n: \"0123\"\n";
    let input = format!(
        "{namespace}---\n{}---\n{config_map}---\n{}",
        yaml(&annotated),
        yaml(&plain)
    );
    let out = inject(&["-f", "-"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let got = docs(&stdout);
    let want = docs(&input);
    assert_eq!(got.len(), 4, "{stdout}");
    assert_eq!(got[0], want[0], "namespace text, comments included");
    assert_eq!(got[2], want[2], "config map text");
    assert_eq!(got[3], want[3], "unannotated StatefulSet text");
    let mutated: Value = serde_yaml_ng::from_str(got[1]).expect("mutated YAML");
    assert_eq!(
        mutated,
        through_webhook(&annotated),
        "inject must equal the webhook"
    );
    assert_eq!(
        mutated["spec"]["template"]["spec"]["initContainers"][0]["image"],
        IMAGE
    );

    // Idempotent: injecting the output again changes nothing.
    let again = inject(&["-f", "-"], &stdout);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
}

#[test]
fn json_list_from_a_file() {
    let annotated = fixture("statefulset-pod-volume");
    let plain = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [plain, annotated]});
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("list.json");
    std::fs::write(&file, serde_json::to_string_pretty(&list).expect("json")).expect("write");
    let out = inject(&["-f", file.to_str().expect("path")], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(got["items"][0], list["items"][0]);
    assert_eq!(got["items"][1], through_webhook(&list["items"][1]));
    assert_ne!(
        got["items"][1], list["items"][1],
        "the StatefulSet was mutated"
    );
}

#[test]
fn a_denial_names_the_document_and_prints_nothing() {
    let ok = fixture("statefulset-basic");
    let bad = fixture("statefulset-no-volumes");
    let input = format!("{}---\n{}", yaml(&ok), yaml(&bad));
    let out = inject(&[], &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no partial output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("document 2 (StatefulSet shop/stateless)"),
        "{stderr}"
    );
    assert!(stderr.contains("s3-seed.io/volume is required"), "{stderr}");

    let list = json!({"apiVersion": "v1", "kind": "List", "items": [ok, bad]});
    let out = inject(&[], &list.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("document 1 (item 2, StatefulSet shop/stateless)"),
        "{stderr}"
    );

    let out = inject(&["-f", "/nonexistent/manifest.yaml"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/manifest.yaml")
    );
}

/// The message of the webhook's denial of `object`.
fn webhook_denial(object: &Value) -> String {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u", "operation": "CREATE", "name": "x", "userInfo": {},
            "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "object": object,
        }
    });
    let answer = review(
        &serde_json::to_vec(&body).expect("json"),
        &InjectConfig::default(),
    );
    let response: Value = serde_json::from_slice(&answer.body).expect("review JSON");
    assert_eq!(response["response"]["allowed"], false, "{response}");
    response["response"]["status"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[test]
fn a_refusal_says_once_exactly_what_the_webhook_says() {
    let cases = [
        ("s3-seed.io/source", "s3://b/x/".to_owned()),
        ("s3-seed.io/region", "r".repeat(5000)),
        ("s3-seed.io/sorce", "s3://bucket/x/".to_owned()),
    ];
    for (key, value) in cases {
        let mut object = fixture("statefulset-basic");
        object["metadata"]["annotations"][key] = value.as_str().into();
        let denial = webhook_denial(&object);
        let out = inject(&[], &yaml(&object));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!("error: document 1 (StatefulSet shop/web): denied: {denial}\n"),
            "inject and the webhook disagree"
        );
    }
}

#[test]
fn a_yaml_error_is_printed_once() {
    // Aliases that expand a thousandfold: serde_yaml's repetition limit.
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in [
        ("b", "a"),
        ("c", "b"),
        ("d", "c"),
        ("e", "d"),
        ("f", "e"),
        ("g", "f"),
    ] {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let out = inject(&[], &laughs);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: document 1: not valid YAML: "),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("repetition limit exceeded").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_repeated_key_is_refused_with_its_line() {
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";
    let statefulset = yaml(&fixture("statefulset-basic"));
    let twice = statefulset.replacen(
        "    s3-seed.io/source: ",
        "    s3-seed.io/source: s3://other-bucket/x/\n    s3-seed.io/source: ",
        1,
    );
    assert_ne!(twice, statefulset, "the fixture has the annotation");
    let input = format!("{namespace}---\n{twice}");
    let line = input
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("s3-seed.io/source:"))
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("second line");
    let out = inject(&[], &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "document 2: not valid YAML: metadata.annotations: duplicate key \"s3-seed.io/source\""
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("at line {line} column")),
        "line {line}: {stderr}"
    );

    let json = "{\"apiVersion\": \"apps/v1\",\n \"kind\": \"StatefulSet\",\n \"kind\": \"Pod\"}";
    let out = inject(&[], json);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("document 1: not valid JSON: duplicate key \"kind\" at line 3"),
        "{stderr}"
    );
}

/// `s3-seed.io/*` keys on the pod template: the document is printed as the
/// webhook admits it (unchanged), and stderr carries the same warning as the
/// AdmissionReview's `warnings`, after the document it is about.
#[test]
fn template_annotations_print_the_webhooks_warning() {
    let mut object = fixture("statefulset-basic");
    object["metadata"]["annotations"] = json!({});
    object["spec"]["template"]["metadata"]["annotations"] =
        json!({"s3-seed.io/source": "s3://shop-assets/site/v3/"});
    let out = inject(&[], &yaml(&object));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "Warning: document 1 (StatefulSet shop/web): spec.template.metadata.annotations: s3-seed.io/source is ignored on the pod template; s3-seed reads s3-seed.io/* annotations from the StatefulSet's metadata.annotations, move it there"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), yaml(&object));
}
