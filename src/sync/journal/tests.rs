//! Table tests of folding the journal into the state, and the journal file's round trip.

use super::*;

const SRC: &str = "s3://b/p/";

fn entry(mtime_ns: i64) -> Entry {
    Entry {
        key: "p/k".into(),
        size: 3,
        etag: Some("\"e\"".into()),
        last_modified: Some(1),
        mtime_ns,
        verified: Some("crc32".into()),
        ino: None,
        parts: None,
    }
}

fn id(ino: u64) -> FileId {
    FileId { dev: 1, ino }
}

fn placed(source: &str, path: &str, ino: u64) -> Placed {
    Placed {
        source: source.into(),
        path: path.into(),
        id: id(ino),
        entry: entry(ino as i64),
    }
}

fn state(source: &str, paths: &[&str]) -> State {
    let mut s = State::new(source.into());
    for p in paths {
        s.entries.insert((*p).into(), entry(0));
    }
    s
}

/// Fold and describe: the source and each path with the mtime of its entry.
fn run(
    previous: Option<State>,
    lines: Vec<Placed>,
    on_disk: &[(&str, Option<u64>)],
) -> Option<(String, Vec<(String, i64)>)> {
    let ids: HashMap<RelPath, Option<FileId>> = on_disk
        .iter()
        .map(|(p, ino)| (RelPath::parse(p).unwrap(), ino.map(id)))
        .collect();
    fold(previous, lines, &ids).map(|s| {
        let entries = s.entries.iter().map(|(p, e)| (p.clone(), e.mtime_ns));
        (s.source.clone(), entries.collect())
    })
}

fn described(source: &str, entries: &[(&str, i64)]) -> Option<(String, Vec<(String, i64)>)> {
    let entries = entries.iter().map(|(p, m)| ((*p).to_owned(), *m));
    Some((source.to_owned(), entries.collect()))
}

#[test]
fn only_files_still_at_their_path_are_folded_in() {
    let other = "s3://other/";
    let cases = [
        // what a killed first run placed becomes the state
        (
            None,
            vec![placed(SRC, "a", 5), placed(SRC, "b", 6)],
            vec![("a", Some(5)), ("b", Some(6))],
            described(SRC, &[("a", 5), ("b", 6)]),
        ),
        // journaled, then killed before the rename: another file (or none) is there
        (
            None,
            vec![placed(SRC, "a", 5), placed(SRC, "b", 6)],
            vec![("a", Some(9)), ("b", None)],
            None,
        ),
        (
            Some(state(SRC, &["old"])),
            vec![placed(SRC, "a", 5)],
            vec![("a", None)],
            described(SRC, &[("old", 0)]),
        ),
        // a placed file replaces the state's older entry for the path
        (
            Some(state(SRC, &["a", "old"])),
            vec![placed(SRC, "a", 5)],
            vec![("a", Some(5))],
            described(SRC, &[("a", 5), ("old", 0)]),
        ),
        // two runs placed the same path: the file on disk says which counts
        (
            None,
            vec![placed(SRC, "a", 5), placed(SRC, "a", 7)],
            vec![("a", Some(5))],
            described(SRC, &[("a", 5)]),
        ),
        (
            None,
            vec![placed(SRC, "a", 5), placed(SRC, "a", 7)],
            vec![("a", Some(7))],
            described(SRC, &[("a", 7)]),
        ),
        // another source: nothing can be skipped, everything can be pruned
        (
            Some(state(other, &["old"])),
            vec![placed(SRC, "a", 5)],
            vec![("a", Some(5))],
            described("", &[("a", 5), ("old", 0)]),
        ),
        (
            None,
            vec![placed(SRC, "a", 5), placed(other, "b", 6)],
            vec![("a", Some(5)), ("b", Some(6))],
            described("", &[("a", 5), ("b", 6)]),
        ),
        // a path that is not a safe relative path is never taken
        (None, vec![placed(SRC, "../x", 5)], vec![], None),
    ];
    for (i, (previous, lines, on_disk, want)) in cases.into_iter().enumerate() {
        assert_eq!(run(previous, lines, &on_disk), want, "case {i}");
    }
}

#[test]
fn record_read_clear_round_trip_skips_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::open(dir.path()).unwrap();
    assert!(read(&target).is_empty());
    let journal = Journal::open(&target).unwrap();
    let lines = [placed(SRC, "a", 5), placed(SRC, "d/b", 6)];
    for line in &lines {
        journal.record(line).unwrap();
    }
    let path = dir.path().join(".s3-seed/journal");
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    torn.write_all(br#"{"source":"s3://b/p/","path":"c","id":{"de"#)
        .unwrap();
    assert_eq!(read(&target), lines);
    journal.clear().unwrap();
    assert!(read(&target).is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}
