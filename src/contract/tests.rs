//! Table tests for the annotation contract.

use super::*;

/// Test targets: `/t` for the unnamed source, `/t/NAME` for named ones.
fn target(name: Option<&SourceName>) -> String {
    name.map_or_else(|| "/t".to_owned(), |n| format!("/t/{n}"))
}

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
        (ROLLOUT, "on-change"),
        (SOURCE_REVISION, "0123456789abcdef"),
        ("kubernetes.io/change-cause", "ignored"),
    ]))
    .unwrap()
    .unwrap();
    let source = spec.unnamed().unwrap();
    assert_eq!(spec.sources.len(), 1);
    assert_eq!(source.source.to_string(), "s3://models/v3/");
    assert_eq!(source.volume.as_deref(), Some("data"));
    assert_eq!(source.sub_path.as_ref().map(SubPath::as_str), Some("seed"));
    assert_eq!(
        spec.connection.credentials_secret.as_deref(),
        Some("s3-creds")
    );
    assert_eq!(spec.connection.path_style, Some(true));
    assert!(!source.prune);
    assert_eq!(source.include.patterns(), ["*.bin", "pages/**"]);
    assert_eq!(source.connection, Connection::default());
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
        (ROLLOUT, "always"),
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

/// An unknown key of 1 MiB, plain and with a valid source name.
static LONG_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("s3-seed.io/{}", "sourc".repeat(1 << 18)));
static LONG_NAMED_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("s3-seed.io/{}.model", "regio".repeat(1 << 18)));

#[test]
fn unknown_keys_suggest_the_closest() {
    let cases = [
        ("s3-seed.io/sorce", Some(SOURCE)),
        ("s3-seed.io/subpath", Some(SUB_PATH)),
        ("s3-seed.io/credential-secret", Some(CREDENTIALS_SECRET)),
        ("s3-seed.io/rolout", Some(ROLLOUT)),
        ("s3-seed.io/image", None),
        ("s3-seed.io/zzzzzzzzzzzzzzzzzz", None),
        // with a suffix, the suggestion keeps it
        ("s3-seed.io/sorce.model", Some("s3-seed.io/source.model")),
        (
            "s3-seed.io/sub-pth.data-1",
            Some("s3-seed.io/sub-path.data-1"),
        ),
        ("s3-seed.io/regoin.model", Some("s3-seed.io/region.model")),
        // StatefulSet-wide keys take no suffix
        ("s3-seed.io/enabled.model", Some(ENABLED)),
        ("s3-seed.io/status.model", None),
        ("s3-seed.io/image.model", None),
        // far longer than any key: no suggestion (and no distance computed)
        (&*LONG_KEY, None),
        (&*LONG_NAMED_KEY, None),
    ];
    for (key, suggestion) in cases {
        let a = ann(&[(SOURCE, "s3://bucket"), (key, "x")]);
        let err = SeedSpec::from_annotations(&a).unwrap_err();
        assert_eq!(
            err,
            AnnotationError::Unknown {
                key: key.to_owned(),
                suggestion: suggestion.map(str::to_owned)
            }
        );
        let shown = if key.len() > 32 { &key[..32] } else { key };
        assert!(err.to_string().contains(shown));
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
    assert_eq!(
        spec.env(target),
        vec![
            (env::SOURCE, "s3://b-1/x/".to_owned()),
            (env::TARGET, "/t".to_owned())
        ]
    );

    let spec = SeedSpec::from_annotations(&ann(&[
        (SOURCE, "s3://b-1/x/"),
        (REGION, "us-east-1"),
        (PRUNE, "false"),
        (EXCLUDE, "*.tmp"),
        (PATH_STYLE, "false"),
    ]))
    .unwrap()
    .unwrap();
    let names: Vec<_> = spec.env(target).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            env::SOURCE,
            env::TARGET,
            env::EXCLUDE,
            env::NO_PRUNE,
            env::PATH_STYLE,
            env::REGION
        ]
    );
}

#[test]
fn source_names() {
    let ok = ["a", "model", "data-set-2", "x1", &"a".repeat(32)];
    for name in ok {
        assert!(name.parse::<SourceName>().is_ok(), "{name}");
    }
    let bad = [
        "",
        "Model",
        "1model",
        "-a",
        "a-",
        "a_b",
        "a.b",
        "é",
        &"a".repeat(33),
    ];
    for name in bad {
        assert!(name.parse::<SourceName>().is_err(), "{name:?} should fail");
    }
}

#[test]
fn named_sources_parse_with_shared_and_overridden_connection() {
    let spec = SeedSpec::from_annotations(&ann(&[
        (SOURCE, "s3://base/"),
        ("s3-seed.io/source.model", "s3://models/llama/"),
        ("s3-seed.io/volume.model", "weights"),
        ("s3-seed.io/sub-path.model", "llama"),
        ("s3-seed.io/include.model", "*.safetensors"),
        ("s3-seed.io/source.dataset", "s3://datasets/wiki/"),
        ("s3-seed.io/prune.dataset", "false"),
        ("s3-seed.io/exclude.dataset", "tmp/**"),
        ("s3-seed.io/credentials-secret.dataset", "datasets-s3"),
        ("s3-seed.io/endpoint.dataset", "http://minio:9000"),
        ("s3-seed.io/path-style.dataset", "true"),
        ("s3-seed.io/region.dataset", "us-east-1"),
        (CREDENTIALS_SECRET, "models-s3"),
        (REGION, "eu-west-1"),
    ]))
    .unwrap()
    .unwrap();
    let names: Vec<_> = spec
        .sources
        .keys()
        .map(|n| n.as_ref().map(SourceName::as_str))
        .collect();
    assert_eq!(names, [None, Some("dataset"), Some("model")]);
    let model = &spec.sources[&Some("model".parse().unwrap())];
    assert_eq!(model.source.to_string(), "s3://models/llama/");
    assert_eq!(model.volume.as_deref(), Some("weights"));
    assert_eq!(model.sub_path.as_ref().map(SubPath::as_str), Some("llama"));
    assert_eq!(model.include.patterns(), ["*.safetensors"]);
    assert!(model.prune);
    assert_eq!(model.connection, Connection::default());
    let data = &spec.sources[&Some("dataset".parse().unwrap())];
    assert!(!data.prune);
    assert_eq!(data.exclude.patterns(), ["tmp/**"]);
    assert_eq!(
        data.connection.or(&spec.connection),
        Connection {
            credentials_secret: Some("datasets-s3".to_owned()),
            region: Some("us-east-1".to_owned()),
            endpoint: Some("http://minio:9000".parse().unwrap()),
            path_style: Some(true),
        }
    );
    assert_eq!(model.connection.or(&spec.connection), spec.connection);
    assert_eq!(
        spec.key_prefixes(),
        [("datasets-s3", "S3_SEED_KEYS_1".to_owned())].into()
    );
}

#[test]
fn named_sources_alone_opt_in_and_the_unnamed_one_is_optional() {
    let spec = SeedSpec::from_annotations(&ann(&[
        ("s3-seed.io/source.model", "s3://models/"),
        (ENDPOINT, "http://minio:9000"),
    ]))
    .unwrap()
    .unwrap();
    assert!(spec.unnamed().is_none());
    assert_eq!(spec.sources.len(), 1);
    let env: BTreeMap<_, _> = spec.env(target).into_iter().collect();
    assert_eq!(
        env.keys().copied().collect::<Vec<_>>(),
        [env::ENDPOINT, env::SOURCES]
    );
    assert_eq!(
        parse_entries(&env[env::SOURCES]).unwrap(),
        [SourceEntry {
            name: "model".parse().unwrap(),
            source: "s3://models/".parse().unwrap(),
            target: "/t/model".into(),
            include: GlobList::default(),
            exclude: GlobList::default(),
            prune: true,
            endpoint: None,
            region: None,
            path_style: None,
            credentials: None,
        }]
    );
    // enabled: false still wins
    let off = ann(&[
        ("s3-seed.io/source.model", "s3://models/"),
        (ENABLED, "false"),
    ]);
    assert_eq!(SeedSpec::from_annotations(&off), Ok(None));
}

type Pairs = Vec<(String, String)>;

#[test]
fn refusals_name_the_keys_and_a_fix() {
    let sixteen: Vec<(String, String)> = (0..16)
        .map(|i| (format!("s3-seed.io/source.s{i}"), "s3://bucket/".to_owned()))
        .collect();
    let mut seventeen = sixteen.clone();
    seventeen.push((SOURCE.to_owned(), "s3://bucket/".to_owned()));
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cases: Vec<(Pairs, &[&str])> = vec![
        (
            owned(&[(SOURCE, "s3://b-1/"), ("s3-seed.io/volume.model", "data")]),
            &[
                "annotation s3-seed.io/volume.model: there is no s3-seed.io/source.model",
                "add s3-seed.io/source.model, or correct the name",
            ],
        ),
        (
            // without any source at all, the orphan is still refused
            owned(&[("s3-seed.io/credentials-secret.model", "keys")]),
            &["there is no s3-seed.io/source.model"],
        ),
        (
            owned(&[("s3-seed.io/source.model", "s3://b-1/"), (VOLUME, "data")]),
            &[
                "annotation s3-seed.io/volume: there is no s3-seed.io/source",
                "or write the key with a .NAME suffix",
            ],
        ),
        (
            owned(&[("s3-seed.io/source.Model", "s3://b-1/")]),
            &[
                "annotation s3-seed.io/source.Model: \"Model\" is not a valid source name",
                "lowercase letters, digits and '-'",
            ],
        ),
        (
            owned(&[("s3-seed.io/source.a-", "s3://b-1/")]),
            &["\"a-\" is not a valid source name"],
        ),
        (
            owned(&[
                ("s3-seed.io/source.model", "s3://b-1/"),
                ("s3-seed.io/sub-path.model", "/abs"),
            ]),
            &["annotation s3-seed.io/sub-path.model: \"/abs\" is not a valid path"],
        ),
        (
            owned(&[
                ("s3-seed.io/source.model", "s3://b-1/"),
                ("s3-seed.io/endpoint.model", "x:9"),
            ]),
            &["annotation s3-seed.io/endpoint.model: \"x:9\" is not a valid endpoint"],
        ),
        (
            seventeen,
            &["17 sources", "at most 16 are allowed per StatefulSet"],
        ),
    ];
    for (pairs, needles) in cases {
        let a: BTreeMap<String, String> = pairs.iter().cloned().collect();
        let msg = SeedSpec::from_annotations(&a).unwrap_err().to_string();
        for needle in needles {
            assert!(msg.contains(needle), "{pairs:?}: {msg:?} lacks {needle:?}");
        }
    }
    let a: BTreeMap<String, String> = sixteen.into_iter().collect();
    assert_eq!(
        SeedSpec::from_annotations(&a)
            .unwrap()
            .unwrap()
            .sources
            .len(),
        16
    );
}

/// A source in an overlap case: name, volume, sub-path.
type At = (Option<&'static str>, &'static str, Option<&'static str>);

#[test]
fn overlapping_targets_are_refused() {
    let inside = "one source's directory is inside the other's";
    let cases: [([At; 2], Option<&str>); 7] = [
        (
            [(None, "data", Some("x")), (Some("a"), "data", Some("y"))],
            None,
        ),
        ([(None, "data", None), (Some("a"), "other", None)], None),
        (
            [
                (Some("a"), "data", Some("x/y")),
                (Some("b"), "data", Some("y")),
            ],
            None,
        ),
        (
            [
                (Some("a"), "data", Some("xy")),
                (Some("b"), "data", Some("x")),
            ],
            None,
        ),
        (
            [(None, "data", None), (Some("a"), "data", Some("x"))],
            Some(
                "s3-seed.io/volume \"data\" without s3-seed.io/sub-path and s3-seed.io/sub-path.a \"x\" on volume \"data\": one source's",
            ),
        ),
        (
            [
                (Some("a"), "data", Some("x/y")),
                (Some("b"), "data", Some("x")),
            ],
            Some(inside),
        ),
        (
            [
                (Some("a"), "data", Some("x")),
                (Some("b"), "data", Some("x/")),
            ],
            Some("two sources write to the same directory; give each source its own directory"),
        ),
    ];
    for (sources, want) in cases {
        let owned: Vec<(Option<SourceName>, &str, Option<SubPath>)> = sources
            .iter()
            .map(|(n, v, s)| {
                (
                    n.map(|n| n.parse().unwrap()),
                    *v,
                    s.map(|s| s.parse().unwrap()),
                )
            })
            .collect();
        let placements: Vec<Placement<'_>> = owned
            .iter()
            .map(|(name, volume, sub_path)| Placement {
                name: name.as_ref(),
                volume,
                sub_path: sub_path.as_ref(),
            })
            .collect();
        let got = check_overlaps(&placements).err().map(|e| e.to_string());
        match (got, want) {
            (None, None) => {}
            (Some(msg), Some(want)) => assert!(msg.contains(want), "{msg:?} lacks {want:?}"),
            (got, want) => panic!("{sources:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn env_of_several_sources_keeps_secrets_out_and_numbers_other_secrets() {
    let spec = SeedSpec::from_annotations(&ann(&[
        ("s3-seed.io/source.b", "s3://bb-1/"),
        ("s3-seed.io/credentials-secret.b", "keys-b"),
        ("s3-seed.io/source.a", "s3://aa-1/"),
        ("s3-seed.io/credentials-secret.a", "keys-a"),
        ("s3-seed.io/source.c", "s3://cc-1/"),
        ("s3-seed.io/credentials-secret.c", "shared"),
        (CREDENTIALS_SECRET, "shared"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        spec.key_prefixes(),
        [
            ("keys-a", "S3_SEED_KEYS_1".to_owned()),
            ("keys-b", "S3_SEED_KEYS_2".to_owned())
        ]
        .into()
    );
    let env: BTreeMap<_, _> = spec.env(target).into_iter().collect();
    let entries = parse_entries(&env[env::SOURCES]).unwrap();
    let creds: Vec<_> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.credentials.as_deref()))
        .collect();
    assert_eq!(
        creds,
        [
            ("a", Some("S3_SEED_KEYS_1")),
            ("b", Some("S3_SEED_KEYS_2")),
            ("c", None)
        ]
    );
    for value in env.values() {
        assert!(
            !value.contains("keys-a") && !value.contains("shared"),
            "{value}"
        );
    }
}

#[test]
fn source_entries_refuse_unknown_fields_and_bad_values() {
    let cases = [
        (
            r#"[{"name":"a","source":"s3://bkt/","target":"/t","bogus":1}]"#,
            "unknown field `bogus`",
        ),
        (
            r#"[{"name":"A","source":"s3://bkt/","target":"/t"}]"#,
            "not a valid source name",
        ),
        (
            r#"[{"name":"a","source":"bkt","target":"/t"}]"#,
            "must start with s3://",
        ),
        (
            r#"[{"name":"a","source":"s3://bkt/","target":"/t","region":"EU"}]"#,
            "not a valid region",
        ),
        (
            r#"[{"name":"a","source":"s3://bkt/"}]"#,
            "missing field `target`",
        ),
        (r#"{"name":"a"}"#, "not a JSON array of sources"),
    ];
    for (text, needle) in cases {
        let err = parse_entries(text).unwrap_err();
        assert!(err.contains(needle), "{text}: {err:?} lacks {needle:?}");
    }
    assert_eq!(parse_entries(" "), Ok(Vec::new()));
}
