//! The revision of a source: a short, stable name for "these keys, at these
//! versions", and a compact fingerprint to say what changed between two.
//!
//! The revision is computed from what [`crate::sync::source::select`] selects
//! (the same listing, filters and key rules as the init container), and each
//! object is described by [`VersionToken::canonical`], the one "same version"
//! rule the sync's skip decision uses: so the controller rolls exactly when a
//! sync would download or prune something. An object with neither ETag nor
//! Last-Modified has no token; it counts by key and size alone (the sync
//! fetches it on every run anyway, and a revision that changed on every poll
//! would roll the pods forever).
//!
//! A StatefulSet with several sources has one revision over all of them:
//! each object is described with its source's name (the unnamed source's
//! exactly as before names existed), so a change in any source changes it,
//! the order the sources are listed in does not, and the fingerprint counts
//! changes by source and key.
//!
//! The revision is the first 16 hex digits of a SHA-256 over the sorted
//! descriptions, each length-prefixed: stable across processes and releases,
//! which matters because it is stored on the StatefulSet and compared after
//! a restart or an upgrade of the controller. The fingerprint only lives in
//! memory (what changed is told in an Event), so it keeps 16 bytes a key.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

use crate::contract::SourceName;
use crate::s3::Listed;
use crate::sync::keys::Wanted;

/// A source revision, as stored in `s3-seed.io/source-revision`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision(String);

impl Revision {
    /// A revision read back from an annotation (any text is kept as it is:
    /// it is only ever compared).
    pub fn stored(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per key, a hash of the key and one of its version, sorted by the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(u64, u64)>);

/// The revision and fingerprint of the selections of a StatefulSet's
/// sources, given as (source name, selection) in any order.
pub fn of<'a>(
    sources: impl IntoIterator<Item = (Option<&'a SourceName>, &'a [Wanted])>,
) -> (Revision, Fingerprint) {
    let mut described: Vec<(Option<&SourceName>, &str, String)> = sources
        .into_iter()
        .flat_map(|(name, wanted)| wanted.iter().map(move |w| (name, w)))
        .map(|(name, w)| (name, w.object.key.as_str(), describe(name, &w.object)))
        .collect();
    described.sort();
    let mut sha = Sha256::new();
    for (_, _, text) in &described {
        sha.update((text.len() as u64).to_be_bytes());
        sha.update(text.as_bytes());
    }
    let digest = sha.finalize();
    let revision = Revision(digest[..8].iter().map(|b| format!("{b:02x}")).collect());
    let mut prints: Vec<(u64, u64)> = described
        .iter()
        .map(|(name, key, text)| (quick_hash(&(name, key)), quick_hash(text)))
        .collect();
    prints.sort_unstable();
    (revision, Fingerprint(prints))
}

/// One object of one source as hashed into the revision. The unnamed
/// source's objects are described exactly as before sources had names (so
/// its stored revisions stay valid); a named source's carry
/// `source LEN:NAME ` first, which no unnamed description starts with.
fn describe(name: Option<&SourceName>, o: &Listed) -> String {
    let text = o
        .version()
        .map(|t| t.canonical())
        .unwrap_or_else(|| format!("{}:{} {} none", o.key.len(), o.key, o.size));
    match name {
        Some(name) => format!("source {}:{name} {text}", name.as_str().len()),
        None => text,
    }
}

/// A hash for the in-memory fingerprint only (never stored).
fn quick_hash(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// How two selections differ, counted by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
}

impl Changes {
    /// What changed from `old` to `new`.
    pub fn between(old: &Fingerprint, new: &Fingerprint) -> Self {
        let (mut a, mut b) = (old.0.iter().peekable(), new.0.iter().peekable());
        let mut out = Self::default();
        loop {
            let step = match (a.peek(), b.peek()) {
                (None, None) => return out,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.0.cmp(&y.0),
            };
            match step {
                Ordering::Less => {
                    out.removed += 1;
                    a.next();
                }
                Ordering::Greater => {
                    out.added += 1;
                    b.next();
                }
                Ordering::Equal => {
                    let (x, y) = (a.next().map(|p| p.1), b.next().map(|p| p.1));
                    out.changed += usize::from(x != y);
                }
            }
        }
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.changed, "changed"),
            (self.added, "added"),
            (self.removed, "removed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            f.write_str("no key changed")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::keys::RelPath;

    fn obj(key: &str, size: u64, etag: Option<&str>, mtime: Option<i64>) -> Wanted {
        Wanted {
            rel: RelPath::parse(key).expect("a valid path"),
            object: Listed {
                key: key.to_owned(),
                size,
                etag: etag.map(str::to_owned),
                last_modified: mtime,
            },
        }
    }

    /// The revision of one unnamed source.
    fn unnamed(wanted: &[Wanted]) -> (Revision, Fingerprint) {
        of([(None, wanted)])
    }

    fn base() -> Vec<Wanted> {
        vec![
            obj("a.bin", 10, Some("\"e1\""), Some(100)),
            obj("b/c.txt", 3, Some("\"e2\""), Some(100)),
            obj("d", 0, None, Some(7)),
        ]
    }

    #[test]
    fn the_revision_is_stable_and_tracks_every_version() {
        let (rev, _) = unnamed(&base());
        assert_eq!(rev.as_str().len(), 16);
        assert!(rev.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(rev, unnamed(&base()).0);
        let mut reversed = base();
        reversed.reverse();
        assert_eq!(unnamed(&reversed).0, rev, "listing order must not matter");
        type Edit = fn(&mut Vec<Wanted>);
        let edits: [(&str, Edit); 6] = [
            ("etag", |w| w[0].object.etag = Some("\"e9\"".into())),
            ("size", |w| w[1].object.size = 4),
            ("mtime without etag", |w| {
                w[2].object.last_modified = Some(8)
            }),
            ("added", |w| w.push(obj("z", 1, Some("\"e\""), None))),
            ("removed", |w| {
                w.pop();
            }),
            ("renamed", |w| w[0].object.key = "a2.bin".into()),
        ];
        for (what, edit) in edits {
            let mut changed = base();
            edit(&mut changed);
            assert_ne!(unnamed(&changed).0, rev, "{what}");
        }
        // The ETag decides alone, as in the sync's skip rule.
        let mut touched = base();
        touched[0].object.last_modified = Some(999);
        assert_eq!(unnamed(&touched).0, rev);
        // No token at all: key and size only, so it stays stable.
        let bare = vec![obj("x", 5, None, None)];
        assert_eq!(unnamed(&bare).0, unnamed(&bare).0);
        assert_eq!(unnamed(&[]).0, unnamed(&[]).0);
        assert_ne!(unnamed(&[]).0, rev);
    }

    #[test]
    fn a_stored_revision_is_pinned() {
        // Pinned so that a change of the description format, which would
        // roll every opted-in StatefulSet on upgrade, fails here first.
        let one = vec![obj("k", 1, Some("\"e\""), None)];
        assert_eq!(unnamed(&one).0.as_str(), pinned_revision());
    }

    fn pinned_revision() -> String {
        let text = "1:k 1 etag \"e\"";
        let mut sha = Sha256::new();
        sha.update((text.len() as u64).to_be_bytes());
        sha.update(text.as_bytes());
        sha.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn changes_are_counted_by_key() {
        let print = |w: &[Wanted]| unnamed(w).1;
        let old = print(&base());
        let mut new = base();
        new[0].object.etag = Some("\"e9\"".into());
        new[1].object.size = 99;
        new.push(obj("new", 1, Some("\"n\""), None));
        let cases = [
            (print(&base()), "no key changed", (0, 0, 0)),
            (print(&new), "2 changed, 1 added", (2, 1, 0)),
            (print(&base()[..1]), "2 removed", (0, 0, 2)),
            (print(&[]), "3 removed", (0, 0, 3)),
        ];
        for (to, text, (changed, added, removed)) in cases {
            let c = Changes::between(&old, &to);
            assert_eq!(c.to_string(), text);
            assert_eq!((c.changed, c.added, c.removed), (changed, added, removed));
        }
        let c = Changes::between(&print(&[]), &old);
        assert_eq!(c.to_string(), "3 added");
    }

    #[test]
    fn several_sources_make_one_revision() {
        let (model, dataset): (SourceName, SourceName) = (
            "model".parse().expect("a name"),
            "dataset".parse().expect("a name"),
        );
        let m = || {
            vec![
                obj("w.bin", 10, Some("\"m1\""), None),
                obj("k", 1, Some("\"e\""), None),
            ]
        };
        let d = || vec![obj("k", 1, Some("\"e\""), None)];
        let both = |m: &[Wanted], d: &[Wanted]| of([(Some(&model), m), (Some(&dataset), d)]);
        let (rev, print) = both(&m(), &d());
        let (reordered, _) = of([(Some(&dataset), &d()[..]), (Some(&model), &m()[..])]);
        assert_eq!(reordered, rev, "the order of the sources must not matter");
        let mut m2 = m();
        m2[0].object.etag = Some("\"m2\"".into());
        let mut d2 = d();
        d2[0].object.size = 2;
        let mut moved = m();
        let w = moved.remove(0);
        let renamed: SourceName = "data".parse().expect("a name");
        type Case<'a> = (&'a str, (Revision, Fingerprint), &'a str);
        let cases: [Case<'_>; 6] = [
            ("a change in the first source", both(&m2, &d()), "1 changed"),
            (
                "a change in the second source",
                both(&m(), &d2),
                "1 changed",
            ),
            ("a change in both", both(&m2, &d2), "2 changed"),
            (
                "a key moved to the other source",
                both(&moved, &[d(), vec![w]].concat()),
                "1 added, 1 removed",
            ),
            (
                "a source renamed",
                of([(Some(&model), &m()[..]), (Some(&renamed), &d()[..])]),
                "1 added, 1 removed",
            ),
            (
                "the same objects unnamed",
                of([(None, &m()[..]), (Some(&dataset), &d()[..])]),
                "2 added, 2 removed",
            ),
        ];
        for (what, (changed, to), text) in cases {
            assert_ne!(changed, rev, "{what}");
            assert_eq!(Changes::between(&print, &to).to_string(), text, "{what}");
        }
        // A source that lists nothing still counts: its objects appearing change the revision.
        assert_ne!(both(&m(), &[]).0, rev);
        // Changes are told per source and key across sources.
        let mut m3 = m2.clone();
        m3.push(obj("new", 1, Some("\"n\""), None));
        let c = Changes::between(&print, &both(&m3, &d2).1);
        assert_eq!(c.to_string(), "2 changed, 1 added");
    }
}
