//! Delta transfers, the I/O half: copy the parts of a changed object that
//! [`crate::sync::delta::decide`] finds unchanged from the installed file
//! into this run's part file, before any GET.
//!
//! The installed file is opened read-only through the target's handles and
//! judged by what its own handle says (size, mtime, inode), so the bytes
//! copied come from the very file that was checked. It is only ever read:
//! until the rename that installs the new version it stays whole, whatever
//! happens to this run. Each part is copied with `copy_file_range` (in the
//! kernel, the bytes never pass through this process), or read
//! and written through a pooled buffer where that call is refused, then
//! read back *from the part file* and hashed with the part's CRC: only a
//! part whose bytes there have the CRC S3 lists for the new version counts,
//! and its ranges enter the resume record as done, with their CRCs. Any
//! other part (the application wrote to the file meanwhile, a read failed)
//! is logged and left to the GETs. The finished file is then checked as
//! every ranged download is, part by part and the composite value, so a
//! reused byte is verified exactly like a fetched one, and a resumed run
//! rechecks reused ranges like fetched ones.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustix::io::Errno;

use super::ranged::{Upload, read_back};
use super::resume::{Hash, Record, hash_at};
use super::{Ctx, blocking};
use crate::sync::delta::{self, Decision, PartSum, PartSums};
use crate::sync::error::SyncError;
use crate::sync::keys::RelPath;
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
    file: &Arc<super::direct::PartFile>,
    record: Record,
) -> Result<(Record, u64), SyncError> {
    if installed.is_none() || record.md5 || record.crc != Some(upload.0.kind) {
        return Ok((record, 0));
    }
    let (target, at) = (Arc::clone(&ctx.target), rel.clone());
    let opened = blocking(move || Ok(target.open_installed(&at))).await?;
    let local = opened.as_ref().map(|(_, stat)| *stat);
    let reuse = match delta::decide(installed, &part_sums(upload), local) {
        Decision::Delta { reuse, fetch } => {
            let (reuse_n, fetch_n) = (reuse.len(), fetch.len());
            tracing::info!(
                reuse = reuse_n,
                fetch = fetch_n,
                "delta transfer: unchanged parts come from the installed file"
            );
            reuse
        }
        Decision::FullDownload(why) => {
            tracing::info!(reason = %why, "no delta transfer; downloading every part");
            return Ok((record, 0));
        }
    };
    let Some((from, _)) = opened else {
        return Ok((record, 0));
    };
    let jobs: Vec<Job> = jobs(upload, &record)
        .into_iter()
        .filter(|j| reuse.contains(&j.part))
        .filter(|j| !j.ranges.iter().all(|r| record.done.contains_key(r)))
        .collect();
    let (to, ranges, kind) = (Arc::clone(file), record.ranges(), upload.0.kind);
    let done = read_back(ctx, move |buf| {
        let checked = jobs.into_iter().map(|job| {
            let got = take(&from, &to, &job, &ranges, kind, buf);
            (job, got)
        });
        Ok(checked.collect::<Vec<_>>())
    })
    .await?;
    let mut record = record;
    let mut bytes = 0;
    for (job, got) in done {
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

/// Copy one part from `from` to `to` at its offset, then read it back from
/// `to`: the CRC of each of its ranges, when the part has the listed CRC.
fn take(
    from: &File,
    to: &File,
    job: &Job,
    ranges: &[(u64, u64)],
    kind: CrcKind,
    buf: &mut [u8],
) -> Result<Vec<(u64, u64)>, String> {
    copy(from, to, job.start, job.size, buf).map_err(|e| format!("copy failed: {e}"))?;
    let mut crcs = Vec::with_capacity(job.ranges.len());
    let (mut part_crc, mut covered) = (kind.checksum(&[]), 0);
    for &i in &job.ranges {
        let range = usize::try_from(i).ok().and_then(|i| ranges.get(i));
        let &(start, len) = range.ok_or("a range outside the record")?;
        let read = hash_at(to, start, len, Hash::Crc(kind), buf);
        let (crc, _) = read.ok_or("reading the copied bytes back failed")?;
        part_crc = kind.combine(part_crc, crc, len);
        covered += len;
        crcs.push((i, crc));
    }
    if covered != job.size || part_crc != job.crc {
        return Err(format!(
            "{} of the copied bytes is {part_crc:x}, S3 lists {:x} for the new version",
            kind.name(),
            job.crc
        ));
    }
    Ok(crcs)
}

/// `len` bytes at `start` of `from` to the same offset of `to`: in the
/// kernel where it can, else through `buf`.
fn copy(from: &File, to: &File, start: u64, len: u64, buf: &mut [u8]) -> io::Result<()> {
    let end = start + len;
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let want = usize::try_from(end - off_in).map_or(1 << 30, |n| n.min(1 << 30));
        let copied =
            rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), want);
        match copied {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM) => {
                return copy_through(from, to, off_in, end - off_in, buf);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The read-and-write fallback of [`copy`].
fn copy_through(from: &File, to: &File, start: u64, len: u64, buf: &mut [u8]) -> io::Result<()> {
    let (mut at, end) = (start, start + len);
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |n| n.min(buf.len()));
        let n = from.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_at_the_same_offset_in_the_kernel_or_through_a_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100u8).collect();
        std::fs::write(dir.path().join("from"), &body).unwrap();
        let from = File::open(dir.path().join("from")).unwrap();
        let path = dir.path().join("to");
        let to = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        to.set_len(100).unwrap();
        let mut buf = [0u8; 7];
        copy(&from, &to, 10, 30, &mut buf).unwrap();
        copy_through(&from, &to, 50, 25, &mut buf).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[10..40], &body[10..40]);
        assert_eq!(&got[50..75], &body[50..75]);
        assert!(got[..10].iter().chain(&got[40..50]).all(|b| *b == 0));
        let short = copy(&from, &to, 90, 20, &mut buf).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }
}
