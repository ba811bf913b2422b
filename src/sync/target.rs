//! The [`Target`]: the security boundary of the sync on the application's
//! volume. Every filesystem operation of the sync is done here, relative to
//! directory handles.
//!
//! The application owns the volume and may have planted symlinks anywhere in
//! it, so paths are never resolved as strings. [`Target`] holds open handles to
//! the target folder, `.s3-seed/` and `.s3-seed/tmp/`; every other folder is
//! reached by opening one component at a time with `O_NOFOLLOW`, and files are
//! stat'ed, renamed and removed with the `*at` calls on those handles. A
//! symlink, file or device where a folder must be stops the walk.
//!
//! Files are installed the crash-safe way: written in `.s3-seed/tmp/` (same
//! filesystem as the target, so `rename` is atomic) under fresh `O_EXCL`
//! names, fsynced, renamed into place; folders whose entries changed are fsynced before the state file is
//! written, and the state file itself goes through the same steps.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::delta::Installed;
use super::error::{Owner, SyncError};
use super::keys::{RESERVED, RelPath};
use super::lock::TargetLock;

const TMP: &str = "tmp";

/// What is at a path of the target, seen without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFact {
    Missing,
    File {
        size: u64,
        mtime_ns: i64,
    },
    Symlink,
    Dir,
    Other,
    /// A parent component is not a folder (symlink, file, ...): `depth` is the
    /// number of components up to and including it.
    BlockedParent {
        depth: usize,
        symlink: bool,
    },
}

/// Which file an entry is (device and inode). It survives a rename, so a
/// file recorded as a temporary file is recognised at its final path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// An installed file opened for reading ([`Target::open_installed`]).
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    /// The same inode opened with `O_DIRECT`, where the filesystem allows.
    pub direct: Option<File>,
    /// What the file's own handle says it is.
    pub stat: Installed,
}

/// Open handles on the target and s3-seed's folders inside it.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
    root: OwnedFd,
    meta: OwnedFd,
    tmp: OwnedFd,
    /// The target lock, once taken: it lives as long as the last handle on
    /// the target, so blocking work still in flight after a failed run
    /// returns keeps it until that work is done.
    lock: Option<TargetLock>,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn is_permission(e: Errno) -> bool {
    matches!(e, Errno::ACCESS | Errno::PERM | Errno::ROFS)
}

impl Target {
    /// Create (if needed) and open the target, `.s3-seed/` and `.s3-seed/tmp/`,
    /// and prove the process can write there.
    pub fn open(path: &Path) -> Result<Self, SyncError> {
        if let Err(e) = std::fs::create_dir_all(path) {
            let errno = e.raw_os_error().map(Errno::from_raw_os_error);
            return Err(errno
                .and_then(|errno| refused(path, None, errno))
                .unwrap_or_else(|| SyncError::io(path, e)));
        }
        let root = rustix::fs::openat(CWD, path, dir_flags() & !OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| SyncError::io(path, e.into()))?;
        let meta_path = path.join(RESERVED);
        let meta = open_or_make_dir(&root, RESERVED).map_err(|e| match e {
            e if is_permission(e) => refused_or_io(path, &root, e),
            Errno::LOOP | Errno::NOTDIR => SyncError::PathBlocked {
                path: meta_path.clone(),
                reason: "is not a folder (s3-seed keeps its state there)",
            },
            e => SyncError::io(&meta_path, e.into()),
        })?;
        let tmp = open_or_make_dir(&meta, TMP).map_err(|e| match e {
            e if is_permission(e) => refused_or_io(&meta_path, &meta, e),
            e => SyncError::io(meta_path.join(TMP), e.into()),
        })?;
        let target = Self {
            path: path.to_owned(),
            root,
            meta,
            tmp,
            lock: None,
        };
        target.probe_write()?;
        Ok(target)
    }

    fn probe_write(&self) -> Result<(), SyncError> {
        let name = ".probe";
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.tmp, name, flags, Mode::from_bits_truncate(0o600)) {
            Ok(_) => {
                let _ = rustix::fs::unlinkat(&self.tmp, name, AtFlags::empty());
                Ok(())
            }
            Err(e) if is_permission(e) => Err(refused_or_io(
                &self.path.join(RESERVED).join(TMP),
                &self.tmp,
                e,
            )),
            Err(e) => Err(SyncError::io(self.path.join(RESERVED), e.into())),
        }
    }

    /// Keep the target lock for as long as this target is in use.
    pub fn hold(&mut self, lock: TargetLock) {
        self.lock = Some(lock);
    }

    /// The target folder as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a target entry, for messages.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The path of a folder of the target (`""` is the target itself).
    fn folder(&self, dir: &str) -> PathBuf {
        if dir.is_empty() {
            self.path.clone()
        } else {
            self.path.join(dir)
        }
    }

    /// Bytes available to this process on the target's filesystem.
    pub fn free_space(&self) -> Result<u64, SyncError> {
        let st =
            rustix::fs::fstatvfs(&self.root).map_err(|e| SyncError::io(&self.path, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Look at many paths, reusing the folder handle of consecutive siblings.
    pub fn stat_many<'a>(
        &self,
        rels: impl IntoIterator<Item = &'a RelPath>,
    ) -> HashMap<RelPath, LocalFact> {
        self.each_in_dirs(rels, stat_name, |blocked| blocked)
    }

    /// The identity of each path that is a regular file (no symlink followed).
    pub fn ids_many<'a>(
        &self,
        rels: impl IntoIterator<Item = &'a RelPath>,
    ) -> HashMap<RelPath, Option<FileId>> {
        let id = |dir: &OwnedFd, name: &str| {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            let file = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
            file.then(|| FileId::of(&st))
        };
        self.each_in_dirs(rels, id, |_| None)
    }

    /// `look` at each path from its folder's handle (`blocked` when the walk
    /// to the folder stops), opening each folder once for consecutive siblings.
    fn each_in_dirs<'a, T>(
        &self,
        rels: impl IntoIterator<Item = &'a RelPath>,
        look: impl Fn(&OwnedFd, &str) -> T,
        blocked: impl Fn(LocalFact) -> T,
    ) -> HashMap<RelPath, T> {
        let mut sorted: Vec<&RelPath> = rels.into_iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut cache: Option<(String, Result<OwnedFd, LocalFact>)> = None;
        let mut out = HashMap::with_capacity(sorted.len());
        for rel in sorted {
            let (dir, name) = rel.split_parent();
            let dir = dir.unwrap_or("");
            if cache.as_ref().is_none_or(|(d, _)| d != dir) {
                cache = Some((dir.to_owned(), self.walk(dir, false)));
            }
            let fact = match cache.as_ref().map(|(_, r)| r) {
                Some(Ok(fd)) => look(fd, name),
                Some(Err(fact)) => blocked(*fact),
                None => blocked(LocalFact::Missing),
            };
            out.insert(rel.clone(), fact);
        }
        out
    }

    /// Open the folder `dir` (relative, `""` for the target) one component at
    /// a time without following symlinks, creating missing ones if asked.
    fn walk(&self, dir: &str, create: bool) -> Result<OwnedFd, LocalFact> {
        self.walk_checked(dir, create).map_err(|(fact, _)| fact)
    }

    /// [`Self::walk`], with the error for a refused write (or open) when that
    /// is why it stopped, naming the folder that refused it.
    fn walk_checked(
        &self,
        dir: &str,
        create: bool,
    ) -> Result<OwnedFd, (LocalFact, Option<SyncError>)> {
        let mut cur = rustix::io::dup(&self.root).map_err(|_| (LocalFact::Other, None))?;
        let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
        for (depth, comp) in comps.iter().copied().enumerate() {
            let next = if create {
                open_or_make_dir(&cur, comp)
            } else {
                rustix::fs::openat(&cur, comp, dir_flags(), Mode::empty())
            };
            cur = match next {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Err((LocalFact::Missing, None)),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let symlink = stat_name(&cur, comp) == LocalFact::Symlink;
                    let depth = depth + 1;
                    return Err((LocalFact::BlockedParent { depth, symlink }, None));
                }
                Err(e) => {
                    // `comp` itself when it exists (it cannot be opened),
                    // else the folder it could not be made in
                    let at = depth + usize::from(stat_name(&cur, comp) != LocalFact::Missing);
                    let path = self.folder(&comps[..at].join("/"));
                    let st = if at == depth {
                        rustix::fs::fstat(&cur)
                    } else {
                        rustix::fs::statat(&cur, comp, AtFlags::SYMLINK_NOFOLLOW)
                    };
                    return Err((LocalFact::Other, refused(&path, st.ok(), e)));
                }
            };
        }
        Ok(cur)
    }

    fn walk_or_err(&self, dir: &str, create: bool) -> Result<OwnedFd, SyncError> {
        self.walk_checked(dir, create).map_err(|stop| match stop {
            (_, Some(refused)) => refused,
            (LocalFact::BlockedParent { depth, symlink }, None) => SyncError::PathBlocked {
                path: self.display(&dir.split('/').take(depth).collect::<Vec<_>>().join("/")),
                reason: if symlink {
                    "is a symlink where a folder must be"
                } else {
                    "is not a folder but a folder must be there"
                },
            },
            _ => SyncError::io(self.display(dir), io::Error::other("cannot open folder")),
        })
    }

    /// Create a temporary file in `.s3-seed/tmp/` under a fresh name
    /// `<stem>.<random>.<ext>`, with `O_EXCL`: no other run, live or dead,
    /// has it open, so its bytes are exactly what this run writes.
    pub fn create_temp(&self, stem: &str, ext: &str) -> Result<(String, File), SyncError> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        loop {
            let name = unique_name(stem, ext);
            match rustix::fs::openat(&self.tmp, &name, flags, Mode::from_bits_truncate(0o644)) {
                Ok(fd) => return Ok((name, File::from(fd))),
                Err(Errno::EXIST) => continue, // a 64-bit collision: draw again
                Err(e) => return Err(SyncError::io(self.tmp_path(&name), e.into())),
            }
        }
    }

    /// Take over the temporary file `old` left by an earlier (dead) run:
    /// rename it to a fresh name of this run, never replacing anything, and
    /// open that. Only one caller can win the rename, and the caller holds
    /// the target lock, so nobody else writes the adopted file from then on.
    pub fn claim_temp(&self, old: &str, stem: &str, ext: &str) -> Option<(String, File)> {
        let name = unique_name(stem, ext);
        let noreplace = rustix::fs::RenameFlags::NOREPLACE;
        rustix::fs::renameat_with(&self.tmp, old, &self.tmp, &name, noreplace).ok()?;
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        match rustix::fs::openat(&self.tmp, &name, flags, Mode::empty()) {
            Ok(fd) => Some((name, File::from(fd))),
            Err(_) => {
                self.remove_temp(&name);
                None
            }
        }
    }

    /// A second handle on the temporary file `name`, opened with `O_DIRECT`
    /// (the part files of large downloads write around the page cache);
    /// `None` where the filesystem refuses direct I/O.
    pub fn reopen_temp_direct(&self, name: &str) -> Option<File> {
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::DIRECT;
        let fd = rustix::fs::openat(&self.tmp, name, flags, Mode::empty()).ok()?;
        Some(File::from(fd))
    }

    /// The identity and facts of a temporary file, recorded before it is
    /// renamed into place (a rename changes neither).
    pub fn temp_facts(&self, name: &str) -> Result<(FileId, LocalFact), SyncError> {
        let st = rustix::fs::statat(&self.tmp, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| SyncError::io(self.tmp_path(name), e.into()))?;
        Ok((FileId::of(&st), fact_of(&st)))
    }

    /// Open the regular file at `rel` read-only (no symlink followed, a FIFO
    /// never waited on), with what its own handle says it is; `None` when
    /// there is no regular file to open. A delta transfer reads its parts
    /// from exactly the file it checked: the second handle, opened with
    /// `O_DIRECT` where the filesystem allows, is kept only if it is the
    /// same inode.
    pub fn open_installed(&self, rel: &RelPath) -> Option<Opened> {
        let (dir, name) = rel.split_parent();
        let parent = self.walk(dir.unwrap_or(""), false).ok()?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::empty()).ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let LocalFact::File { size, mtime_ns } = fact_of(&st) else {
            return None;
        };
        let id = FileId::of(&st);
        let direct = rustix::fs::openat(&parent, name, flags | OFlags::DIRECT, Mode::empty());
        let direct = direct
            .ok()
            .filter(|fd| rustix::fs::fstat(fd).is_ok_and(|st| FileId::of(&st) == id));
        Some(Opened {
            file: File::from(fd),
            direct: direct.map(File::from),
            stat: Installed {
                size,
                mtime_ns,
                ino: st.st_ino,
            },
        })
    }

    /// Open (creating it if needed, never truncating) a file of `.s3-seed/`;
    /// `append` opens it for appending.
    pub fn open_meta(&self, name: &str, append: bool) -> Result<File, SyncError> {
        let mut flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        if append {
            flags |= OFlags::APPEND;
        }
        rustix::fs::openat(&self.meta, name, flags, Mode::from_bits_truncate(0o644))
            .map(File::from)
            .map_err(|e| match e {
                e if is_permission(e) => refused_or_io(&self.path.join(RESERVED), &self.meta, e),
                e => SyncError::io(self.path.join(RESERVED).join(name), e.into()),
            })
    }

    pub fn remove_temp(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.tmp, name, AtFlags::empty());
    }

    pub fn tmp_path(&self, name: &str) -> PathBuf {
        self.path.join(RESERVED).join(TMP).join(name)
    }

    /// Read a small file of `.s3-seed/tmp/` (resume records).
    pub fn read_temp(&self, name: &str) -> Option<Vec<u8>> {
        read_at(&self.tmp, name)
    }

    /// Replace a small file of `.s3-seed/tmp/` atomically and durably.
    pub fn write_temp_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
        write_atomic(&self.tmp, name, bytes).map_err(|e| SyncError::io(self.tmp_path(name), e))
    }

    /// Read a file of `.s3-seed/` (the state file).
    pub fn read_meta(&self, name: &str) -> Option<Vec<u8>> {
        read_at(&self.meta, name)
    }

    /// Replace a file of `.s3-seed/` atomically and durably.
    pub fn write_meta_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
        write_atomic(&self.meta, name, bytes)
            .map_err(|e| SyncError::io(self.path.join(RESERVED).join(name), e))
    }

    /// Move a fsynced temporary file to `rel`, creating folders on the way.
    /// Returns the installed file's facts. The caller fsyncs the folder later
    /// through [`Target::sync_dirs`].
    pub fn install(&self, tmp_name: &str, rel: &RelPath) -> Result<LocalFact, SyncError> {
        let (dir, name) = rel.split_parent();
        let parent = self.walk_or_err(dir.unwrap_or(""), true)?;
        match stat_name(&parent, name) {
            LocalFact::Missing | LocalFact::File { .. } => {}
            LocalFact::Symlink => return Err(self.blocked(rel, "is a symlink")),
            _ => return Err(self.blocked(rel, "is a folder or special file")),
        }
        rustix::fs::renameat(&self.tmp, tmp_name, &parent, name).map_err(|e| match e {
            e if is_permission(e) => refused_or_io(&self.folder(dir.unwrap_or("")), &parent, e),
            e => SyncError::io(self.display(rel.as_str()), e.into()),
        })?;
        Ok(stat_name(&parent, name))
    }

    fn blocked(&self, rel: &RelPath, reason: &'static str) -> SyncError {
        SyncError::PathBlocked {
            path: self.display(rel.as_str()),
            reason,
        }
    }

    /// fsync folders (relative, `""` for the target) whose entries changed.
    pub fn sync_dirs(&self, dirs: &BTreeSet<String>) -> Result<(), SyncError> {
        for dir in dirs {
            if let Ok(fd) = self.walk(dir, false) {
                rustix::fs::fsync(&fd).map_err(|e| SyncError::io(self.display(dir), e.into()))?;
            }
        }
        Ok(())
    }

    /// Remove a regular file s3-seed placed, then its folders if now empty.
    /// Anything else at that path (symlink, folder) is left alone: `Ok(false)`.
    pub fn remove_placed(&self, rel: &RelPath) -> Result<bool, SyncError> {
        let (dir, name) = rel.split_parent();
        let dir = dir.unwrap_or("");
        let Ok(parent) = self.walk(dir, false) else {
            return Ok(false);
        };
        if !matches!(stat_name(&parent, name), LocalFact::File { .. }) {
            return Ok(false);
        }
        rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(|e| match e {
            e if is_permission(e) => refused_or_io(&self.folder(dir), &parent, e),
            e => SyncError::io(self.display(rel.as_str()), e.into()),
        })?;
        drop(parent);
        self.remove_empty_dirs(dir);
        Ok(true)
    }

    fn remove_empty_dirs(&self, dir: &str) {
        let mut dir = dir.to_owned();
        while !dir.is_empty() {
            let (up, name) = dir.rsplit_once('/').unwrap_or(("", dir.as_str()));
            let Ok(fd) = self.walk(up, false) else { return };
            if rustix::fs::unlinkat(&fd, name, AtFlags::REMOVEDIR).is_err() {
                return; // not empty (or not ours to remove): stop here
            }
            dir = up.to_owned();
        }
    }

    /// Remove every leftover of `.s3-seed/tmp/` after a successful sync.
    pub fn clear_tmp(&self) {
        let Ok(fd) = rustix::io::dup(&self.tmp) else {
            return;
        };
        let Ok(dir) = rustix::fs::Dir::read_from(fd) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                let _ = rustix::fs::unlinkat(&self.tmp, entry.file_name(), AtFlags::empty());
            }
        }
    }
}

/// The error for a write into `dir` (whose stat is `st`) that `e` refused,
/// naming this process's uid and gid; `None` when `e` is no refusal.
fn refused(dir: &Path, st: Option<rustix::fs::Stat>, e: Errno) -> Option<SyncError> {
    let ids = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let owner = st.map(|st| Owner {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
    });
    SyncError::refused(dir, e, ids, owner)
}

/// [`refused`] for the folder open as `fd`, or the plain I/O error.
fn refused_or_io(dir: &Path, fd: &OwnedFd, e: Errno) -> SyncError {
    refused(dir, rustix::fs::fstat(fd).ok(), e).unwrap_or_else(|| SyncError::io(dir, e.into()))
}

/// `<stem>.<16 random hex digits>.<ext>`.
fn unique_name(stem: &str, ext: &str) -> String {
    use rand::{Rng as _, SeedableRng as _};
    let n: u64 = rand::rngs::StdRng::from_os_rng().random();
    format!("{stem}.{n:016x}.{ext}")
}

fn open_or_make_dir(parent: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Err(Errno::NOENT) => {
            match rustix::fs::mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {
                    rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
                }
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

fn stat_name(dir: &OwnedFd, name: &str) -> LocalFact {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(_) => LocalFact::Missing,
        Ok(st) => fact_of(&st),
    }
}

fn fact_of(st: &rustix::fs::Stat) -> LocalFact {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => LocalFact::File {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec as i64,
        },
        FileType::Symlink => LocalFact::Symlink,
        FileType::Directory => LocalFact::Dir,
        _ => LocalFact::Other,
    }
}

fn read_at(dir: &OwnedFd, name: &str) -> Option<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut File::from(fd), &mut out).ok()?;
    Some(out)
}

fn write_atomic(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.new");
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut file = File::from(rustix::fs::openat(
        dir,
        &tmp,
        flags,
        Mode::from_bits_truncate(0o644),
    )?);
    io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    rustix::fs::renameat(dir, &tmp, dir, name)?;
    rustix::fs::fsync(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests;
