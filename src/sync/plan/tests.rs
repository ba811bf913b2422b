//! Table tests of the sync planner: skip, download, prune, clear-first and the errors.

use super::*;

const SRC: &str = "s3://b/p/";
const PART: u64 = 100;

fn listed(key: &str, size: u64, etag: &str) -> Listed {
    Listed {
        key: format!("p/{key}"),
        size,
        etag: Some(etag.to_owned()),
        last_modified: Some(7),
    }
}

fn wanted(rel: &str, size: u64, etag: &str) -> Wanted {
    Wanted {
        rel: RelPath::parse(rel).unwrap(),
        object: listed(rel, size, etag),
    }
}

fn entry(rel: &str, size: u64, etag: &str, mtime_ns: i64) -> Entry {
    Entry {
        key: format!("p/{rel}"),
        size,
        etag: Some(etag.to_owned()),
        last_modified: Some(7),
        mtime_ns,
        verified: None,
        ino: None,
        parts: None,
    }
}

fn state(source: &str, entries: &[(&str, Entry)]) -> State {
    let mut s = State::new(source.to_owned());
    for (rel, e) in entries {
        s.entries.insert((*rel).to_owned(), e.clone());
    }
    s
}

fn file(size: u64, mtime_ns: i64) -> LocalFact {
    LocalFact::File { size, mtime_ns }
}

/// Run the planner and describe the outcome compactly:
/// (skipped, downloaded (with 'R' for ranged), cleared, pruned, kept).
type Outcome = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

fn run(
    wanted: Vec<Wanted>,
    previous: Option<&State>,
    local: &[(&str, LocalFact)],
    prune: bool,
) -> Result<Outcome, String> {
    let local: HashMap<RelPath, LocalFact> = local
        .iter()
        .map(|(p, f)| (RelPath::parse(p).unwrap(), *f))
        .collect();
    let plan = plan(PlanInput {
        source: SRC,
        target: Path::new("/t"),
        wanted,
        previous,
        local: &local,
        prune,
        part_size: PART,
    })
    .map_err(|e| e.to_string())?;
    let names = |v: &[RelPath]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    Ok((
        plan.skip.keys().cloned().collect(),
        plan.download
            .iter()
            .map(|d| format!("{}{}", d.rel, if d.ranged { " R" } else { "" }))
            .collect(),
        names(&plan.clear_first),
        names(&plan.prune),
        plan.keep.keys().cloned().collect(),
    ))
}

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn cold_sync_downloads_everything_small_or_ranged() {
    let got = run(
        vec![wanted("a", 10, "e1"), wanted("d/big", 101, "e2")],
        None,
        &[],
        true,
    );
    assert_eq!(
        got.unwrap(),
        (v(&[]), v(&["a", "d/big R"]), v(&[]), v(&[]), v(&[]))
    );
}

#[test]
fn skip_requires_same_version_and_intact_file() {
    let prev = state(SRC, &[("a", entry("a", 10, "e1", 5))]);
    let cases: [(Wanted, LocalFact, bool); 7] = [
        (wanted("a", 10, "e1"), file(10, 5), true),
        (wanted("a", 10, "e2"), file(10, 5), false), // changed ETag, same size
        (wanted("a", 11, "e1"), file(10, 5), false), // changed size
        (wanted("a", 10, "e1"), file(10, 6), false), // file touched
        (wanted("a", 10, "e1"), file(9, 5), false),  // file truncated
        (wanted("a", 10, "e1"), LocalFact::Missing, false),
        (wanted("a", 10, "e1"), LocalFact::Symlink, false),
    ];
    for (w, fact, skip) in cases {
        let label = format!("{:?} {fact:?}", w.object.etag);
        match run(vec![w], Some(&prev), &[("a", fact)], true) {
            Ok((skipped, downloaded, ..)) => {
                assert_eq!(skipped.len() == 1, skip, "{label}");
                assert_eq!(downloaded.len() == 1, !skip, "{label}");
            }
            Err(e) => assert!(!skip && e.contains("symlink"), "{label}: {e}"),
        }
    }
}

#[test]
fn another_source_trusts_nothing_and_prunes_old_entries() {
    let prev = state(
        "s3://b/other/",
        &[
            ("a", entry("a", 10, "e1", 5)),
            ("old", entry("old", 1, "x", 1)),
        ],
    );
    let got = run(
        vec![wanted("a", 10, "e1")],
        Some(&prev),
        &[("a", file(10, 5))],
        true,
    );
    assert_eq!(
        got.unwrap(),
        (v(&[]), v(&["a"]), v(&[]), v(&["old"]), v(&[]))
    );
}

#[test]
fn prune_only_touches_previous_entries() {
    let prev = state(
        SRC,
        &[
            ("a", entry("a", 1, "e", 1)),
            ("gone", entry("gone", 1, "e", 1)),
        ],
    );
    let local = [
        ("a", file(1, 1)),
        ("gone", file(1, 1)),
        ("users-own", file(3, 3)),
    ];
    let got = run(vec![wanted("a", 1, "e")], Some(&prev), &local, true).unwrap();
    assert_eq!(got, (v(&["a"]), v(&[]), v(&[]), v(&["gone"]), v(&[])));
    let got = run(vec![wanted("a", 1, "e")], Some(&prev), &local, false).unwrap();
    assert_eq!(got, (v(&["a"]), v(&[]), v(&[]), v(&[]), v(&["gone"])));
}

#[test]
fn blocked_destinations_fail_naming_the_path() {
    let cases: [(&str, LocalFact, &str); 4] = [
        (
            "a",
            LocalFact::Symlink,
            "/t/a is a symlink where a file must go",
        ),
        ("a", LocalFact::Dir, "/t/a is a folder where a file must go"),
        ("a", LocalFact::Other, "/t/a is a special file"),
        (
            "d/e/f",
            LocalFact::BlockedParent {
                depth: 1,
                symlink: true,
            },
            "/t/d is a symlink where a folder must be",
        ),
    ];
    for (rel, fact, msg) in cases {
        let err = run(vec![wanted(rel, 1, "e")], None, &[(rel, fact)], true).unwrap_err();
        assert!(err.contains(msg), "{rel} {fact:?}: {err}");
    }
}

#[test]
fn old_files_in_the_way_are_cleared_first() {
    // "d" was a file placed by s3-seed; now "d/x" needs "d" to be a folder.
    let prev = state(SRC, &[("d", entry("d", 1, "e", 1))]);
    let fact = LocalFact::BlockedParent {
        depth: 1,
        symlink: false,
    };
    let got = run(
        vec![wanted("d/x", 1, "e")],
        Some(&prev),
        &[("d/x", fact)],
        true,
    )
    .unwrap();
    assert_eq!(got, (v(&[]), v(&["d/x"]), v(&["d"]), v(&[]), v(&[])));
    // "d/x" was placed by s3-seed; now "d" is a file. Cleared even with --no-prune.
    let prev = state(SRC, &[("d/x", entry("d/x", 1, "e", 1))]);
    let got = run(
        vec![wanted("d", 1, "e")],
        Some(&prev),
        &[("d", LocalFact::Dir)],
        false,
    )
    .unwrap();
    assert_eq!(got, (v(&[]), v(&["d"]), v(&["d/x"]), v(&[]), v(&[])));
    // a user's file in the way is never cleared
    let err = run(vec![wanted("d/x", 1, "e")], None, &[("d/x", fact)], true).unwrap_err();
    assert!(err.contains("/t/d is not a folder"), "{err}");
}

#[test]
fn stores_without_etags_compare_last_modified() {
    let mut e = entry("a", 1, "e", 1);
    e.etag = None;
    let prev = state(SRC, &[("a", e)]);
    let mut w = wanted("a", 1, "e");
    w.object.etag = None;
    let got = run(vec![w.clone()], Some(&prev), &[("a", file(1, 1))], true).unwrap();
    assert_eq!(got.0, v(&["a"]));
    w.object.last_modified = Some(8);
    let got = run(vec![w], Some(&prev), &[("a", file(1, 1))], true).unwrap();
    assert_eq!(got.1, v(&["a"]));
}
