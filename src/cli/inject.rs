//! Flags of `s3-seed inject`.

use std::path::PathBuf;

use clap::Args;

use super::webhook::InjectFlags;

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Manifest file (multi-document YAML or JSON); `-` reads standard input.
    #[arg(
        short = 'f',
        long = "filename",
        env = "S3_SEED_INJECT_FILE",
        default_value = "-"
    )]
    pub file: PathBuf,

    #[command(flatten)]
    pub inject: InjectFlags,
}

pub fn run(args: InjectArgs) -> anyhow::Result<()> {
    crate::inject::run(&args.file, &args.inject.into())?;
    Ok(())
}
