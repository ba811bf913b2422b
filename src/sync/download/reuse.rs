//! Delta transfers, the I/O half: copy the parts of a changed object that
//! [`crate::sync::delta::decide`] finds unchanged from the installed file
//! into this run's part file, before any GET.
//!
//! The installed file is opened read-only through the target's handles and
//! judged by what its own handle says (size, mtime, inode), so the bytes
//! copied come from the very file that was checked. It is only ever read:
//! until the rename that installs the new version it stays whole, whatever
//! happens to this run. How a part is copied depends on the filesystem:
//!
//! - where it shares blocks between files (XFS, Btrfs, bcachefs),
//!   `copy_file_range` clones the part's extents in the kernel (no bytes
//!   move), and the part is then read back *from the part file* and hashed;
//! - elsewhere (ext4, or where the kernel refuses the call) the part is read
//!   once from the installed file, hashed, and written into the part file,
//!   as a GET's bytes are: one read and one write, where a kernel copy plus
//!   a read back would read the part twice and fill the page cache.
//!
//! Reads and writes go around the page cache where the filesystem allows
//! ([`PartFile`]): on the 2-core VM of the benchmarks, filling the cache
//! cost more than the disk. Either way a part counts only if the bytes
//! hashed have the CRC S3 lists for the new version; its ranges then enter
//! the resume record as done, with their CRCs. Any other part (the
//! application wrote to the file meanwhile, a read failed) is logged and
//! left to the GETs. The finished file is then checked as every ranged
//! download is, part by part and the composite value, so a reused byte is
//! verified exactly like a fetched one, and a resumed run rechecks reused
//! ranges like fetched ones.

use std::fs::File;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustix::io::Errno;

use super::direct::PartFile;
use super::ranged::{Upload, read_back};
use super::resume::{Hash, Record, hash_at};
use super::{Ctx, blocking};
use crate::sync::delta::{self, Decision, PartSum, PartSums};
use crate::sync::error::SyncError;
use crate::sync::keys::RelPath;
use crate::sync::parts;
use crate::sync::state::Entry;
use crate::sync::verify::CrcKind;

/// The parts of an upload as a state entry records them (base64 CRCs, as
/// S3 lists them).
pub fn part_sums((offer, parts): &Upload) -> PartSums {
    let sum = |p: &crate::sync::parts::Part| PartSum {
        size: p.size,
        checksum: STANDARD.encode((p.crc as u32).to_be_bytes()),
    };
    PartSums {
        algorithm: offer.kind.into(),
        parts: parts.iter().map(sum).collect(),
    }
}

/// One upload part to take from the installed file.
#[derive(Debug, Clone)]
struct Job {
    /// Index of the part (from 0).
    part: usize,
    start: u64,
    size: u64,
    crc: u64,
    /// Indices of the record's ranges inside the part.
    ranges: Vec<u64>,
}

/// Take the parts of `upload` that are unchanged since `installed` (the
/// state entry of the file at `rel`) into `file`, marking their ranges done
/// in `record`. Returns the record and the bytes reused.
pub async fn reuse(
    ctx: &Arc<Ctx>,
    rel: &RelPath,
    installed: Option<&Entry>,
    upload: &Upload,
    file: &Arc<PartFile>,
    record: Record,
) -> Result<(Record, u64), SyncError> {
    if installed.is_none() || record.md5 || record.crc != Some(upload.0.kind) {
        return Ok((record, 0));
    }
    let (target, at) = (Arc::clone(&ctx.target), rel.clone());
    let opened = blocking(move || Ok(target.open_installed(&at))).await?;
    let local = opened.as_ref().map(|o| o.stat);
    let clone = shares_blocks(file);
    let reuse = match delta::decide(installed, &part_sums(upload), local) {
        Decision::Delta { reuse, fetch } => {
            let (reuse_n, fetch_n) = (reuse.len(), fetch.len());
            tracing::info!(
                reuse = reuse_n,
                fetch = fetch_n,
                cloned = clone,
                trusted = clone && ctx.trust_installed,
                "delta transfer: unchanged parts come from the installed file"
            );
            reuse
        }
        Decision::FullDownload(why) => {
            tracing::info!(reason = %why, "no delta transfer; downloading every part");
            return Ok((record, 0));
        }
    };
    let Some(opened) = opened else {
        return Ok((record, 0));
    };
    let from = Arc::new(PartFile::with(opened.file, || opened.direct));
    let jobs: Vec<Job> = jobs(upload, &record)
        .into_iter()
        .filter(|j| reuse.contains(&j.part))
        .filter(|j| !j.ranges.iter().all(|r| record.done.contains_key(r)))
        .collect();
    let how = How {
        clone,
        trust: ctx.trust_installed,
        kind: upload.0.kind,
        ranges: Arc::new(record.ranges()),
    };
    // Two streams, each with a pooled buffer: one hashes while the other
    // waits on the disk.
    let half = jobs.len().div_ceil(READERS).max(1);
    let streams = jobs.chunks(half).map(|chunk| {
        let (from, to, how, chunk) = (
            Arc::clone(&from),
            Arc::clone(file),
            how.clone(),
            chunk.to_vec(),
        );
        read_back(ctx, move |buf| {
            let checked = chunk.into_iter().map(|job| {
                let got = take(&from, &to, &job, &how, buf);
                (job, got)
            });
            Ok(checked.collect::<Vec<_>>())
        })
    });
    let done = futures::future::try_join_all(streams).await?;
    let mut record = record;
    let mut bytes = 0;
    for (job, got) in done.into_iter().flatten() {
        match got {
            Ok(crcs) => {
                for (i, crc) in crcs {
                    record.mark_done(i, Some(crc), None);
                }
                bytes += job.size;
            }
            Err(reason) => {
                for i in &job.ranges {
                    record.done.remove(i);
                }
                let part = job.part + 1;
                tracing::warn!(part, %reason, "part not reused; fetching it from S3");
            }
        }
    }
    Ok((record, bytes))
}

/// Every upload part with its offset and the record's ranges inside it
/// (ranges never cross a part when its CRCs are checked).
fn jobs((_, parts): &Upload, record: &Record) -> Vec<Job> {
    let ranges = record.ranges();
    let mut start = 0;
    let mut out = Vec::with_capacity(parts.len());
    for (part, p) in parts.iter().enumerate() {
        let end = start + p.size;
        let inside = (0..)
            .zip(&ranges)
            .filter(|(_, (s, _))| *s >= start && *s < end);
        out.push(Job {
            part,
            start,
            size: p.size,
            crc: p.crc,
            ranges: inside.map(|(i, _)| i).collect(),
        });
        start = end;
    }
    out
}

/// Parallel streams of a reuse.
const READERS: usize = 2;

/// How the parts of one object are taken.
#[derive(Debug, Clone)]
struct How {
    /// Clone extents in the kernel, then read the part file back.
    clone: bool,
    /// A cloned part that is one range counts with its listed CRC, unread
    /// (`--trust-installed`).
    trust: bool,
    kind: CrcKind,
    /// The record's ranges.
    ranges: Arc<Vec<(u64, u64)>>,
}

/// Take one part from `from` into `to` at its offset: the CRC of each of
/// its ranges, when the bytes hashed have the part's listed CRC.
fn take(
    from: &PartFile,
    to: &PartFile,
    job: &Job,
    how: &How,
    buf: &mut [u8],
) -> Result<Vec<(u64, u64)>, String> {
    let cloned = how.clone && clone(from, to, job.start, job.size)?;
    let kind = how.kind;
    let range = |i: u64| parts::range_at(&how.ranges, i);
    if let ([i], true) = (job.ranges.as_slice(), cloned && how.trust) {
        // Listed CRC = recorded CRC (`delta::decide`), of bytes now shared
        // with a file that is still the one installed.
        if range(*i) == Some(&(job.start, job.size)) {
            return Ok(vec![(*i, job.crc)]);
        }
    }
    let mut crcs = Vec::with_capacity(job.ranges.len());
    let (mut part_crc, mut covered) = (kind.checksum(&[]), 0);
    for &i in &job.ranges {
        let &(start, len) = range(i).ok_or("a range outside the record")?;
        let read = if cloned {
            hash_at(|b, at| to.read_at(b, at), start, len, Hash::Crc(kind), buf)
        } else {
            let copy = |b: &mut [u8], at| {
                let n = from.read_at(b, at)?;
                to.write_all_at(&b[..n], at)?;
                Ok(n)
            };
            hash_at(copy, start, len, Hash::Crc(kind), buf)
        };
        let (crc, _) = read.ok_or("reading or writing the part failed")?;
        part_crc = kind.combine(part_crc, crc, len);
        covered += len;
        crcs.push((i, crc));
    }
    if covered != job.size || part_crc != job.crc {
        return Err(format!(
            "{} of the reused bytes is {part_crc:x}, S3 lists {:x} for the new version",
            kind.name(),
            job.crc
        ));
    }
    Ok(crcs)
}

/// `len` bytes at `start` of `from` to the same offset of `to`, in the
/// kernel; `false` where the kernel refuses (the bytes are then copied
/// through the process).
fn clone(from: &File, to: &File, start: u64, len: u64) -> Result<bool, String> {
    let end = start + len;
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let want = usize::try_from(end - off_in).map_or(1 << 30, |n| n.min(1 << 30));
        let copied =
            rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), want);
        match copied {
            Ok(0) => return Err("the installed file ended early".to_owned()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM) => {
                return Ok(false);
            }
            Err(e) => return Err(format!("copy failed: {e}")),
        }
    }
    Ok(true)
}

/// Whether `file`'s filesystem shares blocks between files, so that
/// `copy_file_range` clones extents instead of copying bytes.
fn shares_blocks(file: &File) -> bool {
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683e;
    const BCACHEFS: i64 = 0xca45_1a4e;
    // `f_type` is i64 on x86_64 and aarch64, narrower on some targets.
    #[allow(clippy::unnecessary_cast)]
    let magic = |st: rustix::fs::StatFs| st.f_type as i64;
    rustix::fs::fstatfs(file).is_ok_and(|st| matches!(magic(st), XFS | BTRFS | BCACHEFS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::download::direct::ALIGN;
    use crate::sync::target::Target;

    /// Both ways of taking a part (clone then read back, or read, hash and
    /// write) leave the part's bytes at its offset and return each range's
    /// CRC, and neither accepts bytes that do not have the listed CRC.
    #[test]
    fn a_part_is_taken_with_its_range_crcs_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let size = 4 * ALIGN * 8 + 777;
        let body: Vec<u8> = (0..size).map(|i| (i * 31 + i / 4093) as u8).collect();
        std::fs::write(dir.path().join("from"), &body).unwrap();
        let from = PartFile::plain(File::open(dir.path().join("from")).unwrap());
        let kind = CrcKind::Crc32;
        // Part 1 of two: ranges 1 and 2 of the record (an unaligned end).
        let start = 2 * ALIGN * 8;
        let ranges = vec![
            (0, start as u64),
            (start as u64, (ALIGN * 8) as u64),
            (
                (start + ALIGN * 8) as u64,
                (size - start - ALIGN * 8) as u64,
            ),
        ];
        let part = &body[start..];
        let job = |crc| Job {
            part: 1,
            start: start as u64,
            size: part.len() as u64,
            crc,
            ranges: vec![1, 2],
        };
        let mut pool = vec![0u8; 3 * ALIGN * 8];
        let pad = pool.as_ptr().align_offset(ALIGN).min(ALIGN);
        let buf = &mut pool[pad..pad + 2 * ALIGN * 8];
        let target = Target::open(dir.path()).unwrap();
        for clone in [false, true] {
            let (name, file) = target.create_temp("t", "part").unwrap();
            file.set_len(size as u64).unwrap();
            let to = PartFile::open(&target, &name, file);
            let how = How {
                clone,
                trust: true,
                kind,
                ranges: Arc::new(ranges.clone()),
            };
            let got = take(&from, &to, &job(kind.checksum(part)), &how, buf).unwrap();
            let want = vec![
                (1, kind.checksum(&part[..ALIGN * 8])),
                (2, kind.checksum(&part[ALIGN * 8..])),
            ];
            assert_eq!(got, want, "clone {clone}");
            let on_disk = std::fs::read(target.tmp_path(&name)).unwrap();
            assert!(on_disk[start..] == *part, "clone {clone}: bytes differ");
            assert!(on_disk[..start].iter().all(|b| *b == 0), "clone {clone}");
            let refused = take(&from, &to, &job(1), &how, buf).unwrap_err();
            assert!(refused.contains("S3 lists 1"), "{refused}");
        }
        // Trusted: a cloned part of one range counts with its listed CRC
        // unread (here a wrong one, to show nothing was read); copied
        // through the process, or of several ranges, it is still hashed.
        let one = Job {
            part: 0,
            start: 0,
            size: start as u64,
            crc: 7,
            ranges: vec![0],
        };
        for (clone, trust, trusted) in [
            (true, true, true),
            (true, false, false),
            (false, true, false),
        ] {
            let (name, file) = target.create_temp("t", "part").unwrap();
            file.set_len(size as u64).unwrap();
            let to = PartFile::open(&target, &name, file);
            let how = How {
                clone,
                trust,
                kind,
                ranges: Arc::new(ranges.clone()),
            };
            let got = take(&from, &to, &one, &how, buf);
            assert_eq!(got.is_ok(), trusted, "clone {clone} trust {trust}: {got:?}");
            let on_disk = std::fs::read(target.tmp_path(&name)).unwrap();
            assert!(
                on_disk[..start] == body[..start],
                "clone {clone} trust {trust}"
            );
        }
        // A source shorter than the part is an error, not a short part.
        let (_, file) = target.create_temp("t", "part").unwrap();
        let ended = clone(&from, &file, start as u64, size as u64).unwrap_err();
        assert!(ended.contains("ended early"), "{ended}");
    }
}
