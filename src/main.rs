//! Entry point: parse the command line and hand over to [`s3_seed::cli::run`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    s3_seed::cli::run()
}
