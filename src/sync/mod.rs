//! The init-container side: bring a directory up to date with an S3 prefix.

use std::process::ExitCode;

use crate::cli::SyncArgs;

/// Run `s3-seed sync` from parsed flags. (Skeleton: implemented by the sync work.)
pub async fn run_cli(_args: SyncArgs) -> ExitCode {
    eprintln!("error: sync is not built yet");
    ExitCode::FAILURE
}
