//! Several sources in one run (`s3_seed::sync::sources`), against two
//! in-process S3 servers that accept different keys: each source reaches its
//! own store with its own keys into its own directory, filters, state and
//! prune scope stay per source, a warm run GETs nothing from either store,
//! and a failing source fails the run without stopping the other, which
//! stays installed.

mod common;

use std::path::Path;

use common::s3::{Fault, REGION, Rule, S3Server};
use common::sync::{PART_SIZE, config, data, expect_ops, expect_tree, output, tree};
use s3_seed::contract::env;
use s3_seed::s3::StaticCredentials;
use s3_seed::sync::sources::{Outcome, Source, run_all};
use s3_seed::sync::{Summary, SyncConfig};

/// Two stores with different keys, seeded with a model and a dataset.
struct Stores {
    models: S3Server,
    datasets: S3Server,
    weights: Vec<u8>,
}

async fn stores() -> Stores {
    let models = S3Server::start_with_keys("AKIAMODELS", "models-secret").await;
    let datasets = S3Server::start_with_keys("AKIADATASETS", "datasets-secret").await;
    let weights = data(1, 3 * PART_SIZE as usize + 1000);
    models.put("llama/model.safetensors", &weights).await;
    models.put("llama/config.json", b"{\"layers\": 2}").await;
    models.put("llama/notes.tmp", b"scratch").await;
    datasets.put("wiki/a.parquet", &data(2, 5000)).await;
    datasets.put("wiki/sub/b.parquet", &data(3, 7000)).await;
    datasets.put("wiki/readme.md", b"not selected").await;
    Stores {
        models,
        datasets,
        weights,
    }
}

fn keys(s3: &S3Server) -> StaticCredentials {
    let (access, secret) = s3.keys();
    StaticCredentials {
        access_key_id: access.to_owned(),
        secret_access_key: secret.to_owned(),
        session_token: None,
    }
}

/// The model (excluding `*.tmp`) into `root/model` and the dataset (only
/// parquet files) into `root/dataset`, each with its own store's keys.
fn two_sources(s: &Stores, root: &Path) -> Vec<Source> {
    let mut model = reaching(&s.models, "llama/", &root.join("model"));
    model.exclude = "*.tmp".parse().unwrap();
    let mut dataset = reaching(&s.datasets, "wiki/", &root.join("dataset"));
    dataset.include = "*.parquet,sub/**".parse().unwrap();
    vec![
        Source {
            name: Some("model".parse().unwrap()),
            config: model,
        },
        Source {
            name: Some("dataset".parse().unwrap()),
            config: dataset,
        },
    ]
}

/// The harness's sync config, reaching `s3` with its own endpoint and keys
/// (a run of several sources builds one client per source from these).
fn reaching(s3: &S3Server, prefix: &str, target: &Path) -> SyncConfig {
    let mut cfg = config(s3, prefix, target);
    cfg.endpoint = Some(s3.endpoint().parse().unwrap());
    cfg.path_style = true;
    cfg.region = Some(REGION.to_owned());
    cfg.credentials = Some(keys(s3));
    cfg
}

fn summaries(outcomes: Vec<Outcome>) -> Vec<Summary> {
    outcomes
        .into_iter()
        .map(|o| o.result.unwrap_or_else(|e| panic!("{:?}: {e}", o.name)))
        .collect()
}

fn expect_model(root: &Path, s: &Stores) {
    expect_tree(
        &root.join("model"),
        &[
            ("model.safetensors", &s.weights),
            ("config.json", b"{\"layers\": 2}"),
        ],
    );
}

fn expect_dataset(root: &Path) {
    expect_tree(
        &root.join("dataset"),
        &[
            ("a.parquet", &data(2, 5000)),
            ("sub/b.parquet", &data(3, 7000)),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_two_keys_two_directories_and_a_warm_run_gets_nothing() {
    let s = stores().await;
    let root = tempfile::tempdir().unwrap();
    let cold = summaries(run_all(two_sources(&s, root.path())).await);
    expect_model(root.path(), &s);
    expect_dataset(root.path());
    let names: Vec<_> = cold.iter().map(|c| c.source.as_deref()).collect();
    assert_eq!(names, [Some("model"), Some("dataset")]);
    assert_eq!((cold[0].listed, cold[0].downloaded), (3, 2));
    assert_eq!((cold[1].listed, cold[1].downloaded), (3, 2));
    assert!(
        cold[0]
            .text()
            .starts_with("sync done: source model: listed 3,")
    );
    assert!(s.models.counts().op("GetObject") > 0 && s.datasets.counts().op("GetObject") > 0);

    s.models.reset_counts();
    s.datasets.reset_counts();
    let warm = summaries(run_all(two_sources(&s, root.path())).await);
    assert_eq!((warm[0].downloaded, warm[0].skipped), (0, 2));
    assert_eq!((warm[1].downloaded, warm[1].skipped), (0, 2));
    expect_ops(
        &s.models,
        &[("ListObjectsV2", 1)],
        "warm: one listing, no GET",
    );
    expect_ops(
        &s.datasets,
        &[("ListObjectsV2", 1)],
        "warm: one listing, no GET",
    );

    // The stores really do want different keys: swapped, both are refused.
    let mut swapped = two_sources(&s, root.path());
    swapped[0].config.credentials = Some(keys(&s.datasets));
    swapped[1].config.credentials = Some(keys(&s.models));
    for outcome in run_all(swapped).await {
        let err = outcome.result.expect_err("wrong keys");
        assert!(err.to_string().contains("status 403"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_is_per_source_and_never_touches_the_other_sources_files() {
    let s = stores().await;
    let root = tempfile::tempdir().unwrap();
    summaries(run_all(two_sources(&s, root.path())).await);
    let dataset_before = tree(&root.path().join("dataset"));
    let dataset_state = std::fs::read(root.path().join("dataset/.s3-seed/state.json")).unwrap();
    // A file of the dataset's name in the model's directory is not the
    // dataset's to prune, and the model's state does not know it either.
    std::fs::write(root.path().join("model/a.parquet"), b"mine").unwrap();

    s.models.delete("llama/config.json").await;
    s.datasets.delete("wiki/sub/b.parquet").await;
    let run = summaries(run_all(two_sources(&s, root.path())).await);
    assert_eq!((run[0].pruned, run[1].pruned), (1, 1));
    expect_tree(
        &root.path().join("model"),
        &[("model.safetensors", &s.weights), ("a.parquet", b"mine")],
    );
    expect_tree(
        &root.path().join("dataset"),
        &[("a.parquet", &data(2, 5000))],
    );
    assert_ne!(tree(&root.path().join("dataset")), dataset_before);

    // Pruning only the model leaves the dataset's files and state as they were.
    let dataset_now = tree(&root.path().join("dataset"));
    let state_now = std::fs::read(root.path().join("dataset/.s3-seed/state.json")).unwrap();
    s.models.put("llama/config.json", b"v2").await;
    s.models.delete("llama/model.safetensors").await;
    let run = summaries(run_all(two_sources(&s, root.path())).await);
    assert_eq!((run[0].pruned, run[1].pruned), (1, 0));
    assert_eq!(tree(&root.path().join("dataset")), dataset_now);
    assert_eq!(
        std::fs::read(root.path().join("dataset/.s3-seed/state.json")).unwrap(),
        state_now
    );
    assert_ne!(state_now, dataset_state, "the first prune did rewrite it");
}

/// The binary, configured as the webhook configures the init container:
/// named sources in `S3_SEED_SOURCES`, each store's keys under a prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_source_fails_the_run_and_the_other_completes() {
    let s = stores().await;
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("termination-log");
    let entry = |name: &str, s3: &S3Server, prefix: &str, keys: &str, extra: &str| {
        format!(
            r#"{{"name":"{name}","source":"{}","target":"{}","endpoint":"{}","credentials":"{keys}"{extra}}}"#,
            s3.uri(prefix),
            root.path().join(name).display(),
            s3.endpoint()
        )
    };
    let sources = format!(
        "[{},{}]",
        entry(
            "model",
            &s.models,
            "llama/",
            "KEYS_M",
            r#","exclude":"*.tmp""#
        ),
        entry(
            "dataset",
            &s.datasets,
            "wiki/",
            "KEYS_D",
            r#","include":"*.parquet,sub/**""#
        )
    );
    s.datasets.inject(
        Rule::new(Fault::Error {
            status: 403,
            code: "AccessDenied",
        })
        .op("GetObject")
        .key("wiki/sub/b.parquet")
        .times(100),
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_s3-seed"));
    cmd.arg("sync").env_clear().env("PATH", "/usr/bin:/bin");
    let (ma, ms) = s.models.keys();
    let (da, ds) = s.datasets.keys();
    cmd.envs([
        (env::SOURCES, sources.as_str()),
        (env::PATH_STYLE, "true"),
        (env::REGION, "us-east-1"),
        ("KEYS_M_AWS_ACCESS_KEY_ID", ma),
        ("KEYS_M_AWS_SECRET_ACCESS_KEY", ms),
        ("KEYS_D_AWS_ACCESS_KEY_ID", da),
        ("KEYS_D_AWS_SECRET_ACCESS_KEY", ds),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("S3_SEED_TERMINATION_LOG", log.to_str().unwrap()),
        (env::SUMMARY_FORMAT, "json"),
    ]);
    let out = output(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.starts_with("s3-seed sync failed: source dataset: source s3://seed-bucket/wiki/: "),
        "{message}"
    );
    assert!(message.contains("AccessDenied"), "{message}");
    assert!(!message.contains("source model"), "{message}");
    assert!(!message.contains("datasets-secret") && !stderr.contains("datasets-secret"));
    // The model ran to completion, is installed and reported.
    expect_model(root.path(), &s);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON summary per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["source"], "model");
    assert_eq!(lines[0]["downloaded"], 2);
    // The failed source installed nothing it could not finish.
    assert!(!root.path().join("dataset/sub/b.parquet").exists());
}
