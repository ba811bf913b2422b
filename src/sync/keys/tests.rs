//! Table tests of the key → path rules.

use super::*;

fn obj(key: &str) -> Listed {
    Listed {
        key: key.to_owned(),
        size: 1,
        etag: Some("\"e\"".to_owned()),
        last_modified: None,
    }
}

fn globs(s: &[&str]) -> Vec<Pattern> {
    s.iter().map(|p| Pattern::new(p).unwrap()).collect()
}

fn rels(prefix: &str, keys: &[&str], filters: &Filters) -> Result<Vec<String>, String> {
    select(prefix, keys.iter().map(|k| obj(k)).collect(), filters)
        .map(|w| w.into_iter().map(|w| w.rel.to_string()).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn rel_paths() {
    let ok = [
        "a",
        "a/b",
        "a b/c.d",
        "..a",
        "a..",
        ".hidden",
        "x/.s3-seed",
        "a+b%2B",
        "\u{d55c}",
    ];
    for rel in ok {
        assert_eq!(RelPath::parse(rel).unwrap().as_str(), rel);
    }
    let long = "x".repeat(256);
    let bad = [
        ("", "empty path"),
        ("/etc/passwd", "absolute"),
        ("../x", "'.' or '..'"),
        ("a/../../x", "'.' or '..'"),
        ("./a", "'.' or '..'"),
        ("a/.", "'.' or '..'"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("a\\b", "backslash"),
        ("a\0b", "NUL"),
        ("bad\u{1}key", "control character"),
        ("two\nlines", "control character"),
        ("esc\u{1b}[31m", "control character"),
        ("del\u{7f}", "control character"),
        ("c1\u{85}", "control character"),
        (".s3-seed/state.json", "reserved"),
        (".s3-seed", "reserved"),
        (long.as_str(), "longer than 255"),
    ];
    for (rel, why) in bad {
        let err = RelPath::parse(rel).unwrap_err();
        assert!(err.contains(why), "{rel:?}: {err}");
    }
}

#[test]
fn split_parent() {
    let p = RelPath::parse("a/b/c").unwrap();
    assert_eq!(p.split_parent(), (Some("a/b"), "c"));
    let p = RelPath::parse("c").unwrap();
    assert_eq!(p.split_parent(), (None, "c"));
}

#[test]
fn folder_sources() {
    let all = Filters::default();
    let keys = ["m/", "m/a", "m/b/c", "m/b/", "n/x", "m2/y"];
    let cases: [(&str, Vec<&str>); 4] = [
        ("m/", vec!["a", "b/c"]),
        ("m", vec!["a", "b/c"]),
        ("", vec!["m/a", "m/b/c", "n/x", "m2/y"]),
        ("zz/", vec![]),
    ];
    for (prefix, want) in cases {
        assert_eq!(
            rels(prefix, &keys, &all).unwrap(),
            want,
            "prefix {prefix:?}"
        );
    }
}

#[test]
fn single_object_sources() {
    let all = Filters::default();
    let keys = ["models/big.bin", "models/big.bin.sha", "models/other"];
    assert_eq!(rels("models/big.bin", &keys, &all).unwrap(), ["big.bin"]);
    let only_txt = Filters::new(globs(&["*.txt"]), vec![]);
    assert!(rels("models/big.bin", &keys, &only_txt).unwrap().is_empty());
    let err = rels("m", &["m", "m/x"], &all).unwrap_err();
    assert!(err.contains("both a file and a folder prefix"), "{err}");
}

#[test]
fn hostile_keys_fail_naming_the_key() {
    let all = Filters::default();
    let cases = [
        ("p/", "p/../x"),
        ("p/", "p/a//b"),
        ("p/", "p/./a"),
        ("p/", "p/a\\b"),
        ("p/", "p/.s3-seed/x"),
        ("", "/abs"),
    ];
    for (prefix, key) in cases {
        let err = rels(prefix, &["p/ok", key], &all).unwrap_err();
        assert!(err.contains(&format!("{key:?}")), "{key}: {err}");
    }
}

#[test]
fn file_and_folder_conflicts() {
    let all = Filters::default();
    let err = rels("", &["a", "a/b"], &all).unwrap_err();
    assert!(err.contains("\"a\" is both"), "{err}");
    let err = rels("", &["x/a/b/c", "x/a"], &all).unwrap_err();
    assert!(err.contains("\"x/a\" is both"), "{err}");
    // siblings sharing a name prefix are fine
    assert_eq!(rels("", &["a", "a-b", "ab/c"], &all).unwrap().len(), 3);
}

#[test]
fn include_exclude() {
    let keys = ["p/a.bin", "p/a.txt", "p/d/b.bin", "p/d/e/c.bin"];
    let cases: [(&[&str], &[&str], Vec<&str>); 5] = [
        (&[], &[], vec!["a.bin", "a.txt", "d/b.bin", "d/e/c.bin"]),
        (&["*.bin"], &[], vec!["a.bin"]),
        (&["**/*.bin"], &[], vec!["a.bin", "d/b.bin", "d/e/c.bin"]),
        (&["d/**"], &["**/c.bin"], vec!["d/b.bin"]),
        (&[], &["*.txt", "d/*"], vec!["a.bin", "d/e/c.bin"]),
    ];
    for (inc, exc, want) in cases {
        let f = Filters::new(globs(inc), globs(exc));
        assert_eq!(rels("p/", &keys, &f).unwrap(), want, "{inc:?} {exc:?}");
    }
}

#[test]
fn excluded_hostile_keys_are_not_written_and_do_not_fail() {
    let f = Filters::new(globs(&["*.bin"]), vec![]);
    assert_eq!(rels("p/", &["p/a.bin", "p/../x"], &f).unwrap(), ["a.bin"]);
}
