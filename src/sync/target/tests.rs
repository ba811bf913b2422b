//! Tests of the directory handles: symlinks are never followed, temp files are installed atomically.

use std::io::Write as _;
use std::os::unix::fs::symlink;

use super::*;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn setup() -> (tempfile::TempDir, tempfile::TempDir, Target) {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = Target::open(dir.path()).unwrap();
    (dir, outside, target)
}

fn temp_with(target: &Target, stem: &str, body: &[u8]) -> String {
    let (name, mut f) = target.create_temp(stem, "tmp").unwrap();
    f.write_all(body).unwrap();
    f.sync_all().unwrap();
    name
}

#[test]
fn stat_many_never_follows_symlinks() {
    let (dir, outside, target) = setup();
    std::fs::write(outside.path().join("x"), b"outside").unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/f"), b"abc").unwrap();
    symlink(outside.path(), dir.path().join("link")).unwrap();
    symlink(outside.path().join("x"), dir.path().join("d/l")).unwrap();
    let paths = [
        rel("d/f"),
        rel("d/l"),
        rel("link/x"),
        rel("d"),
        rel("nope/x"),
        rel("d/f/g"),
    ];
    let facts = target.stat_many(paths.iter());
    assert!(matches!(
        facts[&rel("d/f")],
        LocalFact::File { size: 3, .. }
    ));
    assert_eq!(facts[&rel("d/l")], LocalFact::Symlink);
    assert_eq!(
        facts[&rel("link/x")],
        LocalFact::BlockedParent {
            depth: 1,
            symlink: true
        }
    );
    assert_eq!(facts[&rel("d")], LocalFact::Dir);
    assert_eq!(facts[&rel("nope/x")], LocalFact::Missing);
    assert_eq!(
        facts[&rel("d/f/g")],
        LocalFact::BlockedParent {
            depth: 2,
            symlink: false
        }
    );
}

#[test]
fn install_creates_folders_and_refuses_symlinks() {
    let (dir, outside, target) = setup();
    let t1 = temp_with(&target, "t1", b"hello");
    let (id, _) = target.temp_facts(&t1).unwrap();
    let fact = target.install(&t1, &rel("a/b/c.txt")).unwrap();
    assert!(matches!(fact, LocalFact::File { size: 5, .. }));
    assert_eq!(
        std::fs::read(dir.path().join("a/b/c.txt")).unwrap(),
        b"hello"
    );
    let ids = target.ids_many([&rel("a/b/c.txt"), &rel("a/b"), &rel("nope")]);
    assert_eq!(
        ids[&rel("a/b/c.txt")],
        Some(id),
        "the inode survives the rename"
    );
    assert_eq!((ids[&rel("a/b")], ids[&rel("nope")]), (None, None));

    symlink(outside.path(), dir.path().join("evil")).unwrap();
    let t2 = temp_with(&target, "t2", b"x");
    let err = target.install(&t2, &rel("evil/y")).unwrap_err().to_string();
    assert!(
        err.contains("evil is a symlink where a folder must be"),
        "{err}"
    );
    assert!(
        !outside.path().join("y").exists(),
        "nothing written through the symlink"
    );

    std::fs::write(outside.path().join("victim"), b"keep").unwrap();
    symlink(outside.path().join("victim"), dir.path().join("file")).unwrap();
    let err = target.install(&t2, &rel("file")).unwrap_err().to_string();
    assert!(err.contains("file is a symlink"), "{err}");
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"keep"
    );
}

#[test]
fn remove_placed_only_removes_regular_files_inside() {
    let (dir, outside, target) = setup();
    std::fs::write(outside.path().join("x"), b"outside").unwrap();
    symlink(outside.path(), dir.path().join("link")).unwrap();
    assert!(!target.remove_placed(&rel("link/x")).unwrap());
    assert!(outside.path().join("x").exists());

    std::fs::create_dir_all(dir.path().join("p/q")).unwrap();
    std::fs::write(dir.path().join("p/q/f"), b"1").unwrap();
    assert!(target.remove_placed(&rel("p/q/f")).unwrap());
    assert!(!dir.path().join("p").exists(), "emptied folders go too");

    std::fs::create_dir_all(dir.path().join("k/sub")).unwrap();
    std::fs::write(dir.path().join("k/mine"), b"1").unwrap();
    std::fs::write(dir.path().join("k/sub/f"), b"1").unwrap();
    assert!(target.remove_placed(&rel("k/sub/f")).unwrap());
    assert!(
        dir.path().join("k/mine").exists(),
        "a folder with other files stays"
    );
    assert!(
        !target.remove_placed(&rel("k")).unwrap(),
        "folders are not files"
    );
}

#[test]
fn planted_state_folder_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), dir.path().join(".s3-seed")).unwrap();
    let err = Target::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(".s3-seed is not a folder"), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn clear_tmp_and_free_space() {
    let (_dir, _outside, target) = setup();
    let name = temp_with(&target, "a", b"1");
    target.write_temp_atomic("a.part.json", b"{}").unwrap();
    target.clear_tmp();
    assert!(target.read_temp("a.part.json").is_none());
    assert!(target.claim_temp(&name, "a", "part").is_none());
    assert!(target.free_space().unwrap() > 0);
}

#[test]
fn temporary_names_are_fresh_and_claimed_once() {
    let (dir, _outside, target) = setup();
    let a = temp_with(&target, "s", b"one");
    let b = temp_with(&target, "s", b"two");
    assert_ne!(a, b, "every temporary file gets its own name");
    assert!(a.starts_with("s.") && a.ends_with(".tmp"), "{a}");
    let (claimed, mut file) = target.claim_temp(&a, "s", "part").unwrap();
    assert!(
        claimed.starts_with("s.") && claimed.ends_with(".part"),
        "{claimed}"
    );
    assert!(
        target.claim_temp(&a, "s", "part").is_none(),
        "only one claim wins"
    );
    let mut body = String::new();
    std::io::Read::read_to_string(&mut file, &mut body).unwrap();
    assert_eq!(body, "one");
    let tmp = dir.path().join(".s3-seed/tmp");
    let mut names: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want = vec![b, claimed];
    want.sort();
    assert_eq!(names, want);
}
