//! Arbitrary listings (keys, sizes, ETags, Last-Modified), filters, a
//! previous state and what is on disk, through `keys::select` (the boundary
//! between bucket-chosen strings and paths on the volume) and the planner.
//! The input is JSON (the committed seeds are readable) or, for any other
//! bytes, built with `arbitrary`. Keys are unique, as in a real listing.
//!
//! Checked: every selected key becomes a relative path of normal components
//! that stays inside the target (no `..`, not absolute, no NUL, not under
//! `.s3-seed/`), is a suffix of its key, is unique, and is never also a
//! folder of another; a rejection names the key on one line. The plan skips
//! or downloads each wanted path exactly once, only ever prunes or clears
//! paths of the previous state that are no longer wanted, and fails only
//! naming a blocked path.
#![no_main]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use s3_seed::contract::GlobList;
use s3_seed::sync::SyncError;
use s3_seed::sync::keys::{Filters, Listed, RESERVED, RelPath, select};
use s3_seed::sync::plan::{PlanInput, plan};
use s3_seed::sync::state::{Entry, State};
use s3_seed::sync::target::LocalFact;
use serde::Deserialize;

const TARGET: &str = "/data";
const SOURCE: &str = "s3://bucket/prefix/";

#[derive(Arbitrary, Deserialize, Debug)]
struct Input {
    prefix: String,
    objects: Vec<Object>,
    #[serde(default)]
    include: String,
    #[serde(default)]
    exclude: String,
    #[serde(default)]
    previous: Option<Previous>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    part_size: u64,
}

#[derive(Arbitrary, Deserialize, Debug)]
struct Object {
    key: String,
    /// The key is `prefix` + `key`.
    #[serde(default)]
    under_prefix: bool,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<i64>,
    #[serde(default)]
    fact: Fact,
}

#[derive(Arbitrary, Deserialize, Debug)]
struct Previous {
    #[serde(default)]
    other_source: bool,
    entries: Vec<(String, Recorded)>,
}

#[derive(Arbitrary, Deserialize, Debug)]
struct Recorded {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<i64>,
    #[serde(default)]
    mtime_ns: i64,
    #[serde(default)]
    fact: Fact,
}

/// What stands at a path on disk.
#[derive(Arbitrary, Deserialize, Debug, Default, Clone, Copy)]
enum Fact {
    #[default]
    Missing,
    File {
        size: u64,
        mtime_ns: i64,
    },
    Symlink,
    Dir,
    Other,
    BlockedParent {
        depth: u8,
        symlink: bool,
    },
}

impl Fact {
    /// As the target would report it for `rel` (a blocked parent is one of
    /// its own folders).
    fn local(self, rel: &RelPath) -> LocalFact {
        match self {
            Fact::Missing => LocalFact::Missing,
            Fact::File { size, mtime_ns } => LocalFact::File { size, mtime_ns },
            Fact::Symlink => LocalFact::Symlink,
            Fact::Dir => LocalFact::Dir,
            Fact::Other => LocalFact::Other,
            Fact::BlockedParent { depth, symlink } => {
                let parents = rel.components().count() - 1;
                if parents == 0 {
                    return LocalFact::Missing;
                }
                LocalFact::BlockedParent {
                    depth: usize::from(depth) % parents + 1,
                    symlink,
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = match serde_json::from_slice::<Input>(data) {
        Ok(input) => input,
        Err(_) => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    check(input);
});

fn check(input: Input) {
    let mut seen = HashSet::new();
    let mut facts = HashMap::new();
    let mut listed = Vec::new();
    for o in input.objects {
        let key = if o.under_prefix {
            format!("{}{}", input.prefix, o.key)
        } else {
            o.key
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        facts.insert(key.clone(), o.fact);
        listed.push(Listed {
            key,
            size: o.size,
            etag: o.etag,
            last_modified: o.last_modified,
        });
    }
    let globs = |s: &str| s.parse::<GlobList>().unwrap_or_default().compile();
    let filters = Filters::new(globs(&input.include), globs(&input.exclude));
    let keys: BTreeSet<String> = listed.iter().map(|o| o.key.clone()).collect();

    let wanted = match select(&input.prefix, listed, &filters) {
        Ok(wanted) => wanted,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    SyncError::HostileKey { .. } | SyncError::KeyConflict { .. }
                ),
                "{e:?}"
            );
            one_line(&e.to_string());
            return;
        }
    };
    let mut rels = HashSet::new();
    for w in &wanted {
        let rel = w.rel.as_str();
        inside_target(rel);
        assert!(keys.contains(&w.object.key), "selected a key never listed");
        assert!(
            w.object.key.ends_with(rel),
            "{rel:?} from {:?}",
            w.object.key
        );
        assert!(w.object.key.starts_with(&input.prefix));
        assert!(rels.insert(rel), "two keys become {rel:?}");
    }
    for w in &wanted {
        let (mut dir, _) = w.rel.split_parent();
        while let Some(d) = dir {
            assert!(!rels.contains(d), "{d:?} is a file and a folder");
            dir = d.rsplit_once('/').map(|(parent, _)| parent);
        }
    }

    let previous = input.previous.map(|p| {
        let source = if p.other_source { "s3://other" } else { SOURCE };
        let mut state = State::new(source.to_owned());
        for (path, r) in &p.entries {
            let entry = Entry {
                key: r.key.clone(),
                size: r.size,
                etag: r.etag.clone(),
                last_modified: r.last_modified,
                mtime_ns: r.mtime_ns,
                verified: None,
                ino: None,
                parts: None,
            };
            state.entries.insert(path.clone(), entry);
        }
        (state, p.entries)
    });
    let mut local = HashMap::new();
    for w in &wanted {
        local.insert(w.rel.clone(), facts[&w.object.key].local(&w.rel));
    }
    for (path, r) in previous.iter().flat_map(|(_, e)| e) {
        if let Ok(rel) = RelPath::parse(path) {
            let fact = r.fact.local(&rel);
            local.entry(rel).or_insert(fact);
        }
    }
    let state = previous.as_ref().map(|(s, _)| s);
    let planned = plan(PlanInput {
        source: SOURCE,
        target: Path::new(TARGET),
        wanted: wanted.clone(),
        previous: state,
        local: &local,
        prune: input.prune,
        part_size: input.part_size,
    });
    let p = match planned {
        Ok(p) => p,
        Err(e) => {
            let SyncError::PathBlocked { path, .. } = &e else {
                panic!("plan failed with {e:?}");
            };
            assert!(path.starts_with(TARGET), "{path:?}");
            one_line(&e.to_string());
            return;
        }
    };
    let mut covered: Vec<&str> = p.skip.keys().map(String::as_str).collect();
    covered.extend(p.download.iter().map(|d| d.rel.as_str()));
    covered.sort_unstable();
    let mut expected: Vec<&str> = rels.iter().copied().collect();
    expected.sort_unstable();
    assert_eq!(
        covered, expected,
        "each wanted path skipped or downloaded once"
    );
    for d in &p.download {
        assert_eq!(d.ranged, d.object.size > input.part_size);
    }
    if !p.skip.is_empty() {
        assert_eq!(state.map(|s| s.source.as_str()), Some(SOURCE));
    }
    let old: BTreeSet<&str> = state
        .iter()
        .flat_map(|s| s.entries.keys())
        .map(String::as_str)
        .collect();
    for rel in p.prune.iter().chain(&p.clear_first) {
        let rel = rel.as_str();
        inside_target(rel);
        assert!(
            old.contains(rel),
            "removes {rel:?}, which s3-seed never placed"
        );
        assert!(!rels.contains(rel), "removes {rel:?}, which is wanted");
    }
    if !input.prune {
        assert!(p.prune.is_empty());
    }
    let obsolete: BTreeSet<&str> = old.iter().copied().filter(|o| !rels.contains(o)).collect();
    let mut accounted: Vec<&str> = p.prune.iter().map(RelPath::as_str).collect();
    accounted.extend(p.clear_first.iter().map(RelPath::as_str));
    accounted.extend(p.keep.keys().map(String::as_str));
    accounted.sort_unstable();
    let obsolete: Vec<&str> = obsolete.into_iter().collect();
    assert_eq!(
        accounted, obsolete,
        "every obsolete entry pruned, cleared or kept once"
    );
}

/// A relative path of normal components below the target.
fn inside_target(rel: &str) {
    assert!(!rel.is_empty() && !rel.starts_with('/'), "{rel:?}");
    assert!(!rel.contains(['\0', '\\']), "{rel:?}");
    let parts: Vec<&str> = rel.split('/').collect();
    assert!(
        parts.iter().all(|p| !matches!(*p, "" | "." | "..")),
        "{rel:?}"
    );
    assert_ne!(parts[0], RESERVED, "{rel:?}");
    let joined = Path::new(TARGET).join(rel);
    assert!(joined.starts_with(TARGET));
    assert_eq!(
        joined.components().count(),
        Path::new(TARGET).components().count() + parts.len(),
        "{rel:?}"
    );
    assert!(
        Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{rel:?}"
    );
    assert_eq!(
        RelPath::parse(rel).map(|r| r.to_string()).as_deref(),
        Ok(rel)
    );
}

fn one_line(message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}
