//! Tests of the flags of `s3-seed sync`: flags become the component's config,
//! and the contract round trip: the env the webhook writes into the injected
//! container (from annotations, through `contract::SeedSpec`, and the admin's
//! `InjectConfig`) parses back, through the real clap definition, into the
//! `SyncConfig` of each source the annotations asked for, keys included.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

use clap::{CommandFactory as _, FromArgMatches as _};
use serde_json::Value;

use crate::contract::{SeedSpec, env};
use crate::s3::StaticCredentials;
use crate::sync::SyncConfig;
use crate::sync::sources::Source;
use crate::webhook::InjectConfig;
use crate::webhook::mutate::{MOUNT_PATH, build_container};

use crate::cli::{Cli, Command};

/// The sources of `s3-seed sync ARGS`, with no environment at all.
fn sources(args: &[&str]) -> Result<Vec<Source>, String> {
    let cmd = Cli::command().mut_subcommand("sync", |s| s.mut_args(|a| a.env(None)));
    let argv = ["s3-seed", "sync"].iter().chain(args);
    let matches = cmd.try_get_matches_from(argv).map_err(|e| e.to_string())?;
    match Cli::from_arg_matches(&matches)
        .map_err(|e| e.to_string())?
        .command
    {
        Command::Sync(a) => a.to_sources(|_| None).map_err(|e| e.to_string()),
        _ => Err("not sync".into()),
    }
}

fn config(args: &[&str]) -> Result<SyncConfig, String> {
    let argv = ["--source", "s3://bkt/p/", "--target", "/data"];
    let all: Vec<&str> = argv.iter().chain(args).copied().collect();
    Ok(sources(&all)?.remove(0).config)
}

#[test]
fn flags_become_config() {
    let cfg = config(&[]).unwrap();
    assert_eq!(
        (cfg.prune, cfg.concurrency, cfg.part_size, cfg.lock_timeout),
        (true, 16, 8 << 20, std::time::Duration::from_secs(300))
    );
    let cfg = config(&[
        "--lock-timeout-secs",
        "0",
        "--no-prune",
        "--part-size",
        "256KiB",
        "--concurrency",
        "4",
        "--include",
        "*.bin",
    ])
    .unwrap();
    assert_eq!(
        (cfg.prune, cfg.concurrency, cfg.part_size),
        (false, 4, 256 << 10)
    );
    assert_eq!(cfg.include.patterns(), ["*.bin"]);
    assert_eq!(cfg.lock_timeout, std::time::Duration::ZERO);
    for bad in [
        &["--lock-timeout-secs", "-1"][..],
        &["--part-size", "1KiB"],
        &["--concurrency", "0"],
        &["--part-size", "6GiB"],
    ] {
        assert!(config(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sources_by_hand_and_their_refusals() {
    let list = r#"[{"name":"model","source":"s3://models/","target":"/data/model","region":"eu-west-1"},
                   {"name":"dataset","source":"s3://datasets/","target":"/data/dataset","prune":false,"path-style":true}]"#;
    let got = sources(&["--sources", list, "--endpoint", "http://minio:9000"]).unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|s| s.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(
        names,
        [Some("model".to_owned()), Some("dataset".to_owned())]
    );
    assert_eq!(got[0].config.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        got[1].config.endpoint.as_ref().map(|e| e.as_str()),
        Some("http://minio:9000"),
        "the shared flag"
    );
    assert!(got[1].config.path_style && !got[1].config.prune && got[0].config.prune);
    // Together with the unnamed source: it comes first.
    let both = sources(&[
        "--source",
        "s3://bkt/",
        "--target",
        "/data/site",
        "--sources",
        list,
    ])
    .unwrap();
    assert_eq!(both.len(), 3);
    assert!(both[0].name.is_none());

    let keyed = r#"[{"name":"m","source":"s3://models/","target":"/m","credentials":"KEYS_M"}]"#;
    let cases = [
        (vec![], "the following required arguments were not provided"),
        (vec!["--sources", ""], "nothing to sync"),
        (vec!["--source", "s3://bkt/"], "--target"),
        (vec!["--sources", "[{]"], "not a JSON array of sources"),
        (
            vec!["--sources", keyed],
            "source m: credentials KEYS_M: KEYS_M_AWS_ACCESS_KEY_ID is not set",
        ),
        (
            vec![
                "--source",
                "s3://bkt/",
                "--target",
                "/data",
                "--sources",
                list,
            ],
            "sources (unnamed) and model: targets /data and /data/model are the same directory or one inside the other",
        ),
    ];
    for (args, want) in cases {
        let err = sources(&args).expect_err(want);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// The `env` of the container the webhook injects for these annotations:
/// plain values, and the names of variables taken from a Secret.
fn injected_env(
    annotations: &[(&str, &str)],
    inject: &InjectConfig,
) -> (Vec<(String, String)>, Vec<String>) {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let spec = SeedSpec::from_annotations(&annotations)
        .expect("the annotations of the case are valid")
        .expect("the case opts in");
    let volumes = (spec.sources.keys())
        .map(|name| (name.clone(), "data".to_owned()))
        .collect();
    let container = build_container(&spec, &volumes, inject);
    let vars = container["env"]
        .as_array()
        .expect("the container has an env list");
    let (mut plain, mut secret) = (Vec::new(), Vec::new());
    for var in vars {
        let name = var["name"]
            .as_str()
            .expect("every env var has a name")
            .to_owned();
        match (&var["value"], &var["valueFrom"]) {
            (Value::String(value), Value::Null) => plain.push((name, value.clone())),
            (Value::Null, from) if from["secretKeyRef"].is_object() => secret.push(name),
            other => panic!("{name}: neither a value nor a secretKeyRef: {other:?}"),
        }
    }
    (plain, secret)
}

/// Parse `vars` the way `s3-seed sync` reads its environment: every variable
/// must be the `env =` of one of its flags, and goes through that flag's
/// value parser. The process environment is left out (the command's env
/// bindings are cleared after the lookup), so the test sees only `vars`.
fn parse_env(vars: &[(String, String)]) -> Result<Vec<Source>, String> {
    let cmd = Cli::command();
    let sync = cmd
        .find_subcommand("sync")
        .expect("the sync subcommand exists");
    let mut argv = vec!["s3-seed".to_owned(), "sync".to_owned()];
    for (name, value) in vars {
        let flag = sync
            .get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(name)))
            .ok_or_else(|| format!("{name} is read by no flag of s3-seed sync"))?;
        let long = flag.get_long().expect("every sync flag has a long name");
        argv.push(format!("--{long}={value}"));
    }
    let cmd = cmd.mut_subcommand("sync", |s| s.mut_args(|a| a.env(None)));
    let matches = cmd.try_get_matches_from(argv).map_err(|e| e.to_string())?;
    match Cli::from_arg_matches(&matches)
        .map_err(|e| e.to_string())?
        .command
    {
        Command::Sync(args) => args.to_sources(secret_value).map_err(|e| e.to_string()),
        _ => Err("not sync".into()),
    }
}

/// What the test pretends a variable from a Secret holds.
fn secret_value(name: &str) -> Option<String> {
    Some(format!("value of {name}"))
}

/// The keys [`secret_value`] gives under `prefix`.
fn keys_under(prefix: &str) -> Option<StaticCredentials> {
    Some(StaticCredentials {
        access_key_id: format!("value of {prefix}_AWS_ACCESS_KEY_ID"),
        secret_access_key: format!("value of {prefix}_AWS_SECRET_ACCESS_KEY"),
        session_token: Some(format!("value of {prefix}_AWS_SESSION_TOKEN")),
    })
}

/// Annotations, the admin's config, the sources they must give, and the
/// variables that must come from a credentials Secret.
type Case<'a> = (
    &'a [(&'a str, &'a str)],
    InjectConfig,
    Vec<Source>,
    &'a [&'a str],
);

fn unnamed(config: SyncConfig) -> Vec<Source> {
    vec![Source { name: None, config }]
}

fn named(name: &str, source: &str) -> Source {
    let config = SyncConfig::new(
        source.parse().expect("the case's source is valid"),
        format!("/s3-seed/sources/{name}").into(),
    );
    Source {
        name: Some(name.parse().expect("the case's name is valid")),
        config,
    }
}

fn expected(source: &str) -> SyncConfig {
    let source = source.parse().expect("the case's source is valid");
    SyncConfig::new(source, PathBuf::from(MOUNT_PATH))
}

#[test]
fn injected_env_parses_back_into_the_sync_config() {
    let full = [
        ("s3-seed.io/source", "s3://bkt/models/v2/"),
        ("s3-seed.io/include", "*.bin,cfg/**"),
        ("s3-seed.io/exclude", "tmp/**"),
        ("s3-seed.io/prune", "false"),
        ("s3-seed.io/endpoint", "https://store.example.com:9000"),
        ("s3-seed.io/path-style", "true"),
        ("s3-seed.io/region", "eu-west-1"),
        ("s3-seed.io/credentials-secret", "s3-keys"),
    ];
    let tuned = InjectConfig {
        sync_concurrency: Some(4),
        sync_part_size: Some(1 << 20),
        sync_trust_installed: true,
        ..InjectConfig::default()
    };
    let mut want_full = expected("s3://bkt/models/v2/");
    want_full.include = "*.bin,cfg/**".parse().unwrap();
    want_full.exclude = "tmp/**".parse().unwrap();
    want_full.prune = false;
    want_full.endpoint = Some("https://store.example.com:9000".parse().unwrap());
    want_full.path_style = true;
    want_full.region = Some("eu-west-1".to_owned());
    want_full.concurrency = 4;
    want_full.trust_installed = true;
    want_full.part_size = 1 << 20;

    // The admin's defaults fill what the annotations leave out.
    let defaults = InjectConfig {
        default_region: Some("us-west-2".to_owned()),
        default_endpoint: Some("http://minio.example.com".parse().unwrap()),
        default_path_style: Some(true),
        ..InjectConfig::default()
    };
    let mut want_defaults = expected("s3://bkt");
    want_defaults.region = Some("us-west-2".to_owned());
    want_defaults.endpoint = Some("http://minio.example.com".parse().unwrap());
    want_defaults.path_style = true;

    // A model and a dataset from two buckets with two Secrets; the
    // unsuffixed keys are shared, `.dataset` overrides them.
    let two = [
        ("s3-seed.io/source.model", "s3://models/llama/"),
        ("s3-seed.io/credentials-secret", "models-s3"),
        ("s3-seed.io/region", "eu-west-1"),
        ("s3-seed.io/source.dataset", "s3://datasets/wiki/"),
        ("s3-seed.io/credentials-secret.dataset", "datasets-s3"),
        (
            "s3-seed.io/endpoint.dataset",
            "http://minio.example.com:9000",
        ),
        ("s3-seed.io/path-style.dataset", "true"),
        ("s3-seed.io/include.dataset", "*.parquet"),
        ("s3-seed.io/prune.dataset", "false"),
    ];
    let mut model = named("model", "s3://models/llama/");
    model.config.region = Some("eu-west-1".to_owned());
    let mut dataset = named("dataset", "s3://datasets/wiki/");
    dataset.config.region = Some("eu-west-1".to_owned());
    dataset.config.endpoint = Some("http://minio.example.com:9000".parse().unwrap());
    dataset.config.path_style = true;
    dataset.config.include = "*.parquet".parse().unwrap();
    dataset.config.prune = false;
    dataset.config.credentials = keys_under("S3_SEED_KEYS_1");
    // With the unnamed source too, and the admin's defaults for all.
    let three = [
        ("s3-seed.io/source", "s3://bkt/site/"),
        ("s3-seed.io/source.model", "s3://models/llama/"),
        ("s3-seed.io/region.model", "us-east-2"),
    ];
    let mut site = expected("s3://bkt/site/");
    site.region = Some("us-west-2".to_owned());
    site.endpoint = Some("http://minio.example.com".parse().unwrap());
    site.path_style = true;
    let mut model_with_defaults = named("model", "s3://models/llama/");
    model_with_defaults.config.region = Some("us-east-2".to_owned());
    model_with_defaults.config.endpoint = site.endpoint.clone();
    model_with_defaults.config.path_style = true;
    let keys = |prefix: &str| -> Vec<String> {
        env::AWS_KEYS
            .iter()
            .map(|(k, _)| format!("{prefix}{k}"))
            .collect()
    };
    let two_secrets: Vec<String> = [keys(""), keys("S3_SEED_KEYS_1_")].concat();
    let two_secrets: Vec<&str> = two_secrets.iter().map(String::as_str).collect();

    let cases: [Case<'_>; 5] = [
        (
            &[("s3-seed.io/source", "s3://bkt/p")],
            InjectConfig::default(),
            unnamed(expected("s3://bkt/p")),
            &[],
        ),
        (
            &full,
            tuned,
            unnamed(want_full),
            &[
                env::AWS_ACCESS_KEY_ID,
                env::AWS_SECRET_ACCESS_KEY,
                env::AWS_SESSION_TOKEN,
            ],
        ),
        (
            &[("s3-seed.io/source", "s3://bkt")],
            defaults.clone(),
            unnamed(want_defaults),
            &[],
        ),
        (
            &two,
            InjectConfig::default(),
            vec![dataset, model],
            &two_secrets,
        ),
        (
            &three,
            defaults,
            vec![
                Source {
                    name: None,
                    config: site,
                },
                model_with_defaults,
            ],
            &[],
        ),
    ];
    for (annotations, inject, want, secrets) in cases {
        let (plain, secret) = injected_env(annotations, &inject);
        let got = parse_env(&plain).unwrap_or_else(|e| panic!("{annotations:?}: {e}"));
        assert_eq!(got, want, "{annotations:?} with {inject:?}");
        // Keys reach the SDK's default chain under its own names, never a flag.
        let mut secret = secret;
        secret.sort();
        let mut secrets = secrets.to_vec();
        secrets.sort();
        assert_eq!(secret, secrets, "{annotations:?}");
    }
}

#[test]
fn a_variable_no_flag_reads_is_caught() {
    let vars = [
        (env::SOURCE.to_owned(), "s3://bkt/p".to_owned()),
        (env::TARGET.to_owned(), MOUNT_PATH.to_owned()),
        ("S3_SEED_NOT_A_FLAG".to_owned(), "1".to_owned()),
    ];
    let err = parse_env(&vars).unwrap_err();
    assert!(err.contains("S3_SEED_NOT_A_FLAG"), "{err}");
}
