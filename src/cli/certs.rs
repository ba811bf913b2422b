//! Flags of `s3-seed certs`.

use std::path::PathBuf;

use clap::Args;

use crate::certs::CertsConfig;

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook Service.
    #[arg(long, env = "S3_SEED_SERVICE", default_value = "s3-seed-webhook")]
    pub service: String,

    /// Namespace of the webhook Service.
    #[arg(long, env = "S3_SEED_NAMESPACE", default_value = "s3-seed")]
    pub namespace: String,

    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, env = "S3_SEED_CERTS_OUT", default_value = "certs/out")]
    pub out: PathBuf,

    /// Validity of the generated certificates, in days.
    #[arg(long, env = "S3_SEED_CERTS_DAYS", default_value_t = 365)]
    pub days: u32,

    /// Overwrite existing files in the output directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let config = CertsConfig {
        service: args.service,
        namespace: args.namespace,
        out: args.out,
        days: args.days,
        force: args.force,
    };
    let ca_bundle = crate::certs::run(&config)?;
    println!("{ca_bundle}");
    Ok(())
}
