//! A run of several sources: each source is one whole sync ([`super::run_in`])
//! into its own target, with its own state file, prune scope, retry budget,
//! progress and summary; they run concurrently and share one [`Budget`], so
//! the requests in flight and the memory are bounded as for one source.
//!
//! The failure policy is per source: a failing source never cancels the
//! others, which run to completion and stay installed. The caller gets every
//! [`Outcome`] and decides what the run as a whole reports.

use std::path::Path;

use tokio::task::JoinSet;
use tracing::{Instrument as _, Span};

use super::{Budget, Summary, SyncConfig, SyncError, build_client, run_in};
use crate::contract::SourceName;

/// One source of a run: its name (`None` for the unnamed one) and its sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: Option<SourceName>,
    pub config: SyncConfig,
}

/// What one source of a run came to.
#[derive(Debug)]
pub struct Outcome {
    pub name: Option<SourceName>,
    pub result: Result<Summary, SyncError>,
}

/// Refuse a set of sources that would write into each other: two with the
/// same name, or two whose targets are the same directory or nested (each
/// would prune the other's files). Compares the paths as written.
pub fn check(sources: &[Source]) -> Result<(), SyncError> {
    for (i, a) in sources.iter().enumerate() {
        for b in &sources[i + 1..] {
            if a.name == b.name {
                return Err(SyncError::Config(format!(
                    "source {} is listed twice; give each source its own name",
                    label(a)
                )));
            }
            if nested(&a.config.target, &b.config.target) {
                return Err(SyncError::Config(format!(
                    "sources {} and {}: targets {} and {} are the same directory or one inside the other; give each source its own directory",
                    label(a),
                    label(b),
                    a.config.target.display(),
                    b.config.target.display()
                )));
            }
        }
    }
    Ok(())
}

fn label(s: &Source) -> &str {
    s.name.as_ref().map_or("(unnamed)", SourceName::as_str)
}

fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Sync every source concurrently on one budget, sized by the first
/// source's `concurrency` and `part_size` (the CLI gives every source the
/// same). Each source builds its own client, so each has its own endpoint
/// and keys. Outcomes come back in the order of `sources`.
pub async fn run_all(sources: Vec<Source>) -> Vec<Outcome> {
    let Some(first) = sources.first() else {
        return Vec::new();
    };
    let budget = Budget::new(&first.config);
    let mut set = JoinSet::new();
    for (index, source) in sources.into_iter().enumerate() {
        let span = match &source.name {
            Some(name) => tracing::info_span!("source", name = %name),
            None => Span::current(),
        };
        let budget = budget.clone();
        set.spawn(
            async move {
                let result = match build_client(&source.config).await {
                    Ok(client) => run_in(&source.config, &client, &budget).await,
                    Err(e) => Err(e),
                };
                let result = result.map(|mut summary| {
                    summary.source = source.name.as_ref().map(ToString::to_string);
                    summary
                });
                (index, source, result)
            }
            .instrument(span),
        );
    }
    let mut done = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, source, result)) => done.push((
                index,
                Outcome {
                    name: source.name,
                    result,
                },
            )),
            // A panic is a bug: let it surface as it would in one source.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, outcome)| outcome).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: Option<&str>, target: &str) -> Source {
        Source {
            name: name.map(|n| n.parse().expect("valid name")),
            config: SyncConfig::new("s3://bkt/p/".parse().expect("uri"), target.into()),
        }
    }

    #[test]
    fn targets_must_not_overlap_and_names_not_repeat() {
        let ok = [
            vec![source(None, "/data/a"), source(Some("b"), "/data/b")],
            vec![source(Some("a"), "/data/ab"), source(Some("b"), "/data/a")],
            vec![source(Some("a"), "/data")],
        ];
        for sources in ok {
            assert!(check(&sources).is_ok(), "{sources:?}");
        }
        let bad = [
            (
                vec![source(None, "/data"), source(Some("b"), "/data/b")],
                "sources (unnamed) and b: targets /data and /data/b are the same directory or one inside the other",
            ),
            (
                vec![source(Some("a"), "/data/x/"), source(Some("b"), "/data/x")],
                "sources a and b",
            ),
            (
                vec![source(Some("a"), "/x"), source(Some("a"), "/y")],
                "source a is listed twice",
            ),
        ];
        for (sources, want) in bad {
            let err = check(&sources).expect_err(want);
            assert_eq!(err.exit_code(), 3);
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
