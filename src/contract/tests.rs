//! Table tests for the annotation contract.

use super::*;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn opt_in_and_opt_out() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[], false),
        (&[("app", "x")], false),
        (&[(STATUS, "injected")], false),
        (&[(SOURCE, "s3://bucket/p/")], true),
        (&[(SOURCE, "s3://bucket/p/"), (ENABLED, "true")], true),
        (&[(SOURCE, "s3://bucket/p/"), (ENABLED, "False")], false),
        // disabled wins even when the rest would not parse
        (&[(SOURCE, "nonsense"), (ENABLED, "false")], false),
    ];
    for (pairs, opted_in) in cases {
        let got = SeedSpec::from_annotations(&ann(pairs)).unwrap();
        assert_eq!(got.is_some(), *opted_in, "{pairs:?}");
    }
}

#[test]
fn full_spec_parses() {
    let spec = SeedSpec::from_annotations(&ann(&[
        (SOURCE, "s3://models/v3/"),
        (VOLUME, "data"),
        (SUB_PATH, "seed/"),
        (CREDENTIALS_SECRET, "s3-creds"),
        (REGION, "eu-west-1"),
        (ENDPOINT, "http://minio.minio:9000"),
        (PATH_STYLE, "true"),
        (INCLUDE, "*.bin,pages/**"),
        (EXCLUDE, "*.tmp"),
        (PRUNE, "false"),
        (STATUS, "injected"),
        ("kubernetes.io/change-cause", "ignored"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(spec.source.to_string(), "s3://models/v3/");
    assert_eq!(spec.volume.as_deref(), Some("data"));
    assert_eq!(spec.sub_path.as_ref().map(SubPath::as_str), Some("seed"));
    assert_eq!(spec.credentials_secret.as_deref(), Some("s3-creds"));
    assert_eq!(spec.path_style, Some(true));
    assert!(!spec.prune);
    assert_eq!(spec.include.patterns(), ["*.bin", "pages/**"]);
}

#[test]
fn bad_values_name_their_annotation() {
    let cases = [
        (SOURCE, "bucket/prefix"),
        (SOURCE, "s3://bucket/../etc"),
        (VOLUME, "Data"),
        (SUB_PATH, "/abs"),
        (SUB_PATH, "../up"),
        (CREDENTIALS_SECRET, "not_a_name"),
        (REGION, "EU WEST"),
        (ENDPOINT, "minio:9000"),
        (PATH_STYLE, "yes"),
        (INCLUDE, "[unclosed"),
        (PRUNE, "1"),
        (ENABLED, "maybe"),
    ];
    for (key, value) in cases {
        let mut a = ann(&[(SOURCE, "s3://bucket/p/")]);
        a.insert(key.to_owned(), value.to_owned());
        let err = SeedSpec::from_annotations(&a).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(key), "{key}={value}: {msg}");
        assert!(matches!(err, AnnotationError::Invalid { .. }), "{msg}");
    }
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let cases = [
        ("s3-seed.io/sorce", Some(SOURCE)),
        ("s3-seed.io/subpath", Some(SUB_PATH)),
        ("s3-seed.io/credential-secret", Some(CREDENTIALS_SECRET)),
        ("s3-seed.io/image", None),
        ("s3-seed.io/zzzzzzzzzzzzzzzzzz", None),
    ];
    for (key, suggestion) in cases {
        let a = ann(&[(SOURCE, "s3://bucket"), (key, "x")]);
        let err = SeedSpec::from_annotations(&a).unwrap_err();
        assert_eq!(
            err,
            AnnotationError::Unknown {
                key: key.to_owned(),
                suggestion
            }
        );
        assert!(err.to_string().contains(key));
    }
}

#[test]
fn unknown_key_is_refused_even_without_source() {
    let a = ann(&[("s3-seed.io/sorce", "s3://bucket")]);
    assert!(SeedSpec::from_annotations(&a).is_err());
}

#[test]
fn env_is_minimal_and_ordered() {
    let spec = SeedSpec::from_annotations(&ann(&[(SOURCE, "s3://b-1/x/")]))
        .unwrap()
        .unwrap();
    assert_eq!(spec.env(), vec![(env::SOURCE, "s3://b-1/x/".to_owned())]);

    let spec = SeedSpec::from_annotations(&ann(&[
        (SOURCE, "s3://b-1/x/"),
        (REGION, "us-east-1"),
        (PRUNE, "false"),
        (EXCLUDE, "*.tmp"),
        (PATH_STYLE, "false"),
    ]))
    .unwrap()
    .unwrap();
    let names: Vec<_> = spec.env().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            env::SOURCE,
            env::EXCLUDE,
            env::NO_PRUNE,
            env::PATH_STYLE,
            env::REGION
        ]
    );
}
