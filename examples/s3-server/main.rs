//! The test suite's in-process S3 server as a process of its own, for the
//! benchmarks that need what the s3s-fs binary lacks: per-part CRC32s in
//! HeadObject and GetObjectAttributes (a store like S3 or MinIO that kept
//! the upload's checksums) and server-side counts of what was sent
//! (`bench/sync/delta.sh`). It is s3s + s3s-fs with the harness's additions
//! (`tests/common/s3/`), on 127.0.0.1, its files under `$TMPDIR`.
//!
//! The first line printed is `ENDPOINT ACCESS_KEY SECRET_KEY BUCKET`. Then it
//! reads one command per line on stdin and answers each with one line:
//!
//! ```text
//! arm KEY PART_BYTES   play a store that kept per-part CRC32s of KEY's upload
//!                      in PART_BYTES parts -> "parts N"
//! reset                zero the counters -> "ok"
//! counts               -> "get_object N ranged N get_bytes N requests N"
//! ```
//!
//! It ends at the end of its input.

/// The in-process S3 server of the test suite.
#[allow(dead_code, unused_imports)]
#[path = "../../tests/common/s3/mod.rs"]
mod s3;

use std::io::BufRead as _;

use anyhow::{Context, Result, bail};
use s3::{BUCKET, Marking, S3Server};

/// Parts per GetObjectAttributes page, as S3 answers (the harness pages by
/// two to make its tests paginate).
const ATTRIBUTE_PAGE: usize = 1000;

/// The server runs on the runtime's worker threads while the main thread
/// reads commands.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let server = S3Server::start().await;
    server.set_attribute_page(ATTRIBUTE_PAGE);
    let (access, secret) = server.keys();
    println!("{} {access} {secret} {BUCKET}", server.endpoint());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            [] => continue,
            ["arm", key, part] => arm(&server, key, part)?,
            ["reset"] => {
                server.reset_counts();
                "ok".to_owned()
            }
            ["counts"] => {
                let c = server.counts();
                format!(
                    "get_object {} ranged {} get_bytes {} requests {}",
                    c.op("GetObject"),
                    c.ranged_gets,
                    c.get_bytes,
                    c.total()
                )
            }
            _ => bail!("unknown command {line:?} (arm KEY PART_BYTES | reset | counts)"),
        };
        println!("{answer}");
    }
    Ok(())
}

fn arm(server: &S3Server, key: &str, part: &str) -> Result<String> {
    let part: usize = part
        .parse()
        .with_context(|| format!("part size {part:?}"))?;
    let path = server.root().join(BUCKET).join(key);
    anyhow::ensure!(path.is_file(), "no object {key:?} in {BUCKET}");
    let parts = server.report_composite(key, part, Marking::S3);
    Ok(format!("parts {}", parts.len()))
}
