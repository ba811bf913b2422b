//! The command line: one binary, several subcommands. Every flag also reads
//! an environment variable (`env =`), which is how the webhook configures the
//! injected `sync` container and how the Deployment configures the webhook.
//!
//! This module owns clap. It converts arguments into each component's plain
//! config struct, so components never import clap, then runs the component
//! and maps its result to an exit code.

mod certs;
mod controller;
mod defaults;
mod inject;
mod sync;
pub use sync::{SummaryFormat, SyncArgs};
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::contract::env;
use crate::telemetry::{self, LogFormat};

/// Fill Kubernetes StatefulSet volumes from S3 before the application starts.
#[derive(Debug, Parser)]
#[command(name = "s3-seed", version, about, propagate_version = true)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the mutating admission webhook over HTTPS.
    Webhook(webhook::WebhookArgs),
    /// Bring a directory up to date with an S3 prefix (the injected init container runs this).
    Sync(sync::SyncArgs),
    /// Print manifests as the webhook would mutate them (preview, GitOps pre-rendering).
    Inject(inject::InjectArgs),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(certs::CertsArgs),
    /// Roll StatefulSets that opted in with s3-seed.io/rollout when their source changes.
    Controller(controller::ControllerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Parse the process arguments and run the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    install_crypto_provider();
    telemetry::init(cli.log_format.into());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Webhook(args) => report(webhook::run(args).await),
        Command::Sync(args) => sync::run(args).await,
        Command::Inject(args) => report(inject::run(args)),
        Command::Certs(args) => report(certs::run(args)),
        Command::Controller(args) => report(controller::run(args).await),
    }
}

/// Print an error chain the way `anyhow` formats it, and pick the exit code.
/// The crate's errors carry their cause in their own message and expose no
/// `source()`, so each cause is printed once.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// rustls needs one process-wide crypto provider; aws-lc-rs is the one the
/// AWS SDK already links, so only one implementation is built.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// What `report` prints for an error: each cause once.
    fn printed(e: impl std::error::Error + Send + Sync + 'static) -> (String, String) {
        let message = e.to_string();
        (format!("{:#}", anyhow::Error::from(e)), message)
    }

    #[test]
    fn every_cause_is_printed_once() {
        use std::collections::BTreeMap;

        use crate::webhook::{MutateError, ServerError, TlsError};

        let io = || std::io::Error::other("disk on fire");
        let yaml = serde_yaml_ng::from_str::<serde_json::Value>("a: [").expect_err("bad yaml");
        let bad_bucket: BTreeMap<String, String> =
            [("s3-seed.io/source".to_owned(), "s3://b/x".to_owned())].into();
        let annotation =
            crate::contract::SeedSpec::from_annotations(&bad_bucket).expect_err("bad bucket");
        let cases = [
            printed(ServerError::Bind {
                addr: "127.0.0.1:1".parse().expect("addr"),
                error: io(),
            }),
            printed(ServerError::from(TlsError::ReadFile {
                flag: "--tls-cert",
                path: "/tls/tls.crt".into(),
                error: io(),
            })),
            printed(crate::inject::InjectError::Yaml {
                index: 1,
                error: yaml,
            }),
            printed(crate::inject::InjectError::Denied {
                index: 2,
                what: "StatefulSet web".into(),
                denial: Box::new(MutateError::from(annotation)),
            }),
            printed(crate::certs::CertsError::Write {
                path: "/out/ca.key".into(),
                error: io(),
            }),
        ];
        for (chain, message) in cases {
            assert_eq!(chain, message, "the chain repeats a cause");
        }
    }
}
