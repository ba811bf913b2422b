//! Arbitrary annotation maps through the contract (`SeedSpec`) and the
//! mutation. The input is a JSON object of strings (the committed seeds are
//! readable annotation sets) or, for any other bytes, a map built with
//! `arbitrary` whose keys lean toward `s3-seed.io/...`.
//!
//! Checked: parsing is Ok or an error whose message is bounded and one line;
//! every parsed value prints back to a string that parses to the same value
//! (what the webhook writes, the init container reads back); `mutate` and
//! `plan` agree; a patch applies to the object and gives the desired copy;
//! injecting into the webhook's own output changes nothing (idempotence).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use s3_seed::contract::{
    Endpoint, GlobList, INPUT_KEYS, PREFIX, S3Uri, STATUS, SeedSpec, SubPath, parse_region,
};
use s3_seed::webhook::{Action, InjectConfig, MutateError, mutate, plan};
use serde_json::Value;

const MAX_MESSAGE: usize = 2048;

/// StatefulSets the annotations are put on: one claim template, a pod
/// volume only, no volume at all, and one carrying an earlier injection.
const OBJECTS: [&str; 4] = [
    include_str!("../../fixtures/webhook/statefulset-basic.json"),
    include_str!("../../fixtures/webhook/statefulset-pod-volume.json"),
    include_str!("../../fixtures/webhook/statefulset-no-volumes.json"),
    include_str!("../../fixtures/webhook/statefulset-injected-old.json"),
];

/// The fixtures, parsed once (a parse per input was a tenth of the time).
fn objects() -> &'static [Value] {
    static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
    PARSED.get_or_init(|| {
        OBJECTS
            .iter()
            .map(|o| serde_json::from_str(o).expect("fixture"))
            .collect()
    })
}

/// A key, mostly one of the contract's.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Prefixed(String),
    Other(String),
}

/// A value, sometimes shaped like what the keys expect.
#[derive(Arbitrary, Debug)]
enum Val {
    Raw(String),
    S3 { bucket: String, prefix: String },
    Bool(bool),
    Known(u8),
}

const VALUES: [&str; 10] = [
    "s3://shop-assets/site/v3/",
    "s3://shop-assets/cache/warm.tar",
    "data",
    "warm",
    "true",
    "false",
    "https://minio.example:9000",
    "eu-west-1",
    "**/*.bin,models/*",
    "a/b/",
];

fn build(u: &mut Unstructured<'_>) -> arbitrary::Result<(usize, BTreeMap<String, String>)> {
    let which = usize::from(u8::arbitrary(u)?) % OBJECTS.len();
    let mut map = BTreeMap::new();
    for _ in 0..u.arbitrary_len::<(Key, Val)>()?.min(16) {
        let key = match Key::arbitrary(u)? {
            Key::Known(i) => {
                let keys: Vec<&str> = INPUT_KEYS.iter().copied().chain([STATUS]).collect();
                keys[usize::from(i) % keys.len()].to_owned()
            }
            Key::Prefixed(s) => format!("{PREFIX}{s}"),
            Key::Other(s) => s,
        };
        let value = match Val::arbitrary(u)? {
            Val::Raw(s) => s,
            Val::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Val::Bool(b) => b.to_string(),
            Val::Known(i) => VALUES[usize::from(i) % VALUES.len()].to_owned(),
        };
        map.insert(key, value);
    }
    Ok((which, map))
}

fuzz_target!(|data: &[u8]| {
    let (which, annotations) = match serde_json::from_slice::<BTreeMap<String, String>>(data) {
        Ok(map) => (0, map),
        Err(_) => match build(&mut Unstructured::new(data)) {
            Ok(built) => built,
            Err(_) => return,
        },
    };
    let parsed = SeedSpec::from_annotations(&annotations);
    match &parsed {
        Ok(Some(spec)) => round_trips(spec),
        Ok(None) => {}
        Err(e) => check_message(&e.to_string()),
    }

    let mut object = objects()[which].clone();
    object["metadata"]["annotations"] = serde_json::to_value(&annotations).expect("json");
    let cfg = InjectConfig::default();
    let mutated = mutate(&object, &cfg);
    let planned = plan(&object.to_string(), &cfg);
    let m = match (mutated, planned) {
        (Ok(m), Ok(p)) => {
            assert_eq!(p.patch, m.patch, "plan and mutate patch alike");
            assert_eq!(p.action, m.action);
            m
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "plan and mutate deny alike");
            if let Err(e) = &parsed {
                assert_eq!(a, MutateError::Annotation(e.clone()));
            }
            check_message(&a.to_string());
            return;
        }
        (m, p) => panic!("mutate {m:?} but plan {p:?}"),
    };
    let parsed = parsed.expect("mutate admits only parsed annotations");
    match (&parsed, &m.action) {
        (Some(_), Action::Injected { .. }) | (None, Action::Untouched | Action::Removed) => {}
        (spec, action) => panic!("{action:?} for {spec:?}"),
    }
    let mut applied = object.clone();
    json_patch::patch(&mut applied, &m.patch).expect("the patch applies");
    assert_eq!(applied, m.desired, "patch result is the desired object");
    let again = mutate(&m.desired, &cfg).expect("own output is admitted");
    assert!(again.is_empty(), "not idempotent: {:?}", again.patch);
    if matches!(m.action, Action::Injected { .. }) {
        assert_eq!(again.action, m.action);
    }
});

/// What the webhook writes into the injected container parses back, in the
/// init container, to the same values.
fn round_trips(spec: &SeedSpec) {
    for source in spec.sources.values() {
        let uri: S3Uri = source.source.to_string().parse().expect("source");
        assert_eq!(uri, source.source);
        for globs in [&source.include, &source.exclude] {
            assert_eq!(
                &globs.to_string().parse::<GlobList>().expect("globs"),
                globs
            );
        }
        if let Some(sub) = &source.sub_path {
            let back: SubPath = sub.as_str().parse().expect("sub-path");
            assert_eq!(&back, sub);
        }
        let connection = source.connection.or(&spec.connection);
        if let Some(endpoint) = &connection.endpoint {
            let back: Endpoint = endpoint.to_string().parse().expect("endpoint");
            assert_eq!(&back, endpoint);
        }
        if let Some(region) = &connection.region {
            assert_eq!(&parse_region(region).expect("region"), region);
        }
    }
}

fn check_message(message: &str) {
    assert!(message.len() <= MAX_MESSAGE, "{} bytes", message.len());
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}
