//! The part file of a download, written around the page cache where the
//! filesystem allows it (`O_DIRECT`).
//!
//! Filling the page cache with a multi-GiB download is not free: measured
//! here (a 2-core VM, ext4), copying the bytes into fresh cache pages took
//! more CPU than everything else s3-seed does (57% of the samples of a 2 GiB
//! sync, in the kernel's `copy_folio_from_iter_atomic`), and `dd` writes
//! 2 GiB in 8.7 s buffered against 1.7 s with `oflag=direct`. In a pod, the
//! cache also counts against the container's memory limit. So the file gets
//! a second handle on the same inode opened with `O_DIRECT`, and each write
//! goes through it for its aligned middle (offset, length and memory
//! address multiples of the filesystem's direct-I/O alignment, from
//! `statx(STATX_DIOALIGN)`, at least [`ALIGN`]) and through the ordinary
//! handle for the unaligned ends. A block is therefore only ever written
//! through one of the two, and the kernel keeps both views coherent.
//! A filesystem without direct I/O (statx reports none, the open is
//! refused) or a direct call refused with `EINVAL` leaves the bytes on the
//! ordinary handle: slower, never wrong. Reading a large file back (a
//! delta transfer's reused parts) is split the same way ([`PartFile::read_at`];
//! an installed file read for a delta gets a direct handle too). The
//! ordinary handle does everything else (`copy_file_range`, `fsync`).

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt as _;

use rustix::fs::{AtFlags, StatxFlags};

use crate::sync::target::Target;

/// The least alignment used for direct I/O, and the alignment of the
/// buffer pool's buffers.
pub const ALIGN: usize = 4096;

/// A part file: its ordinary handle, and a direct one where possible.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    direct: Option<Direct>,
}

#[derive(Debug)]
struct Direct {
    file: File,
    /// Alignment of file offsets and lengths.
    offset: u64,
    /// Alignment of memory addresses.
    memory: usize,
}

/// How one write or read is split: `head` bytes through the ordinary
/// handle, then `direct` bytes through the direct one, then the rest
/// through the ordinary handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    head: usize,
    direct: usize,
}

impl PartFile {
    /// A file without a direct handle (small objects, tests).
    pub fn plain(file: File) -> Self {
        Self { file, direct: None }
    }

    /// The temporary file `name` of `target` (already open as `file`), with
    /// a direct handle when its filesystem supports direct I/O.
    pub fn open(target: &Target, name: &str, file: File) -> Self {
        let part = Self::with(file, || target.reopen_temp_direct(name));
        if part.direct.is_none() {
            tracing::debug!(
                file = name,
                "no direct I/O here: writes go through the page cache"
            );
        }
        part
    }

    /// `file` with the direct handle `reopen` gives on the same inode, when
    /// its filesystem supports direct I/O (also for reading an installed
    /// file around the page cache).
    pub fn with(file: File, reopen: impl FnOnce() -> Option<File>) -> Self {
        let direct = alignment(&file).and_then(|(offset, memory)| {
            Some(Direct {
                file: reopen()?,
                offset,
                memory,
            })
        });
        Self { file, direct }
    }

    /// Whether writes bypass the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Write all of `buf` at `offset`.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let Some(d) = &self.direct else {
            return self.file.write_all_at(buf, offset);
        };
        let s = split(offset, buf.len(), buf.as_ptr() as usize, d.offset, d.memory);
        let (head, rest) = buf.split_at(s.head);
        let (middle, tail) = rest.split_at(s.direct);
        self.file.write_all_at(head, offset)?;
        let at = offset + s.head as u64;
        let done = direct_io(middle.len(), d.offset, |from| {
            d.file.write_at(&middle[from..], at + from as u64)
        })?;
        self.file.write_all_at(&middle[done..], at + done as u64)?;
        self.file.write_all_at(tail, at + middle.len() as u64)
    }

    /// Read into `buf` at `offset`, as `read_at` does (a short count is not
    /// an error): the aligned middle through the direct handle, so reading
    /// a large file back does not fill the page cache.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(d) = &self.direct else {
            return self.file.read_at(buf, offset);
        };
        let s = split(offset, buf.len(), buf.as_ptr() as usize, d.offset, d.memory);
        if s.head > 0 || s.direct == 0 {
            // An unaligned head, or nothing direct (then `head` is all).
            return self.file.read_at(&mut buf[..s.head], offset);
        }
        let middle = &mut buf[..s.direct];
        let done = direct_io(s.direct, d.offset, |from| {
            d.file.read_at(&mut middle[from..], offset + from as u64)
        })?;
        // Refused at once, or the end of the file: the ordinary handle says.
        match done {
            0 => self.file.read_at(buf, offset),
            done => Ok(done),
        }
    }
}

impl Deref for PartFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

/// Run direct calls (`op(from)` does bytes `from..len`) while they make
/// aligned progress; returns how far they got. A refusal (`EINVAL`: this
/// file, buffer or offset does not suit direct I/O after all), a short
/// count that breaks the alignment, or the end of the file stop early and
/// leave the rest to the ordinary handle; other errors are errors.
fn direct_io(
    len: usize,
    align: u64,
    mut op: impl FnMut(usize) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut done = 0;
    while done < len {
        match op(done) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if !(n as u64).is_multiple_of(align) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The direct-I/O alignment of `file`'s filesystem (offsets, memory), at
/// least [`ALIGN`]; `None` where it has no direct I/O or cannot say.
fn alignment(file: &File) -> Option<(u64, usize)> {
    let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
    let known = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN);
    let (offset, memory) = (st.stx_dio_offset_align, st.stx_dio_mem_align);
    if !known || offset == 0 || memory == 0 {
        return None;
    }
    let offset = u64::from(offset).max(ALIGN as u64);
    let memory = usize::try_from(memory).ok()?.max(ALIGN);
    // Buffers are aligned to ALIGN only: a larger memory alignment cannot be met.
    (memory <= ALIGN && offset.is_power_of_two()).then_some((offset, memory))
}

/// Split `len` bytes at file `offset`, in memory at `addr`: the direct part
/// starts at the first `align` boundary of the file, and is used only when
/// the memory there is `memory`-aligned and it spans at least one block.
fn split(offset: u64, len: usize, addr: usize, align: u64, memory: usize) -> Split {
    let to_boundary = (align - offset % align) % align;
    let head = usize::try_from(to_boundary).map_or(len, |h| h.min(len));
    let blocks = (len - head) as u64 / align * align;
    let aligned_memory = (addr + head).is_multiple_of(memory);
    match usize::try_from(blocks) {
        Ok(direct) if aligned_memory && direct > 0 => Split { head, direct },
        _ => Split {
            head: len,
            direct: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keep_the_direct_part_aligned() {
        const A: u64 = 4096;
        const M: usize = 4096;
        /// name, file offset, length, memory address -> (head, direct)
        type Case = (&'static str, u64, usize, usize, (usize, usize));
        let cases: &[Case] = &[
            ("all aligned", 0, 8192, 0, (0, 8192)),
            ("aligned start, tail", 4096, 10_000, 4096, (0, 8192)),
            ("unaligned start", 100, 10_000, 100, (3996, 4096)),
            ("shorter than a block", 0, 4000, 0, (4000, 0)),
            ("crosses no whole block", 4000, 4000, 4000, (4000, 0)),
            ("memory unaligned", 0, 8192, 8, (8192, 0)),
            (
                "memory aligned only after the head",
                10,
                9000,
                10,
                (4086, 4096),
            ),
            (
                "memory unaligned after the head",
                10,
                9000,
                4096 - 10,
                (9000, 0),
            ),
            ("empty", 0, 0, 0, (0, 0)),
            ("large", 8 << 20, 512 << 10, 1 << 20, (0, 512 << 10)),
        ];
        for &(name, offset, len, addr, (head, direct)) in cases {
            let s = split(offset, len, addr, A, M);
            assert_eq!((s.head, s.direct), (head, direct), "{name}");
            if s.direct > 0 {
                assert_eq!((offset + s.head as u64) % A, 0, "{name}: file offset");
                assert_eq!((addr + s.head) % M, 0, "{name}: memory");
                assert_eq!(s.direct as u64 % A, 0, "{name}: length");
            }
            assert!(s.head + s.direct <= len, "{name}");
        }
    }

    #[test]
    fn direct_calls_stop_at_a_refusal_or_a_short_count() {
        let ok = |n: usize| move |_from: usize| -> io::Result<usize> { Ok(n) };
        assert_eq!(direct_io(8192, 4096, ok(4096)).unwrap(), 8192);
        assert_eq!(direct_io(8192, 4096, ok(100)).unwrap(), 100, "short count");
        assert_eq!(direct_io(8192, 4096, ok(0)).unwrap(), 0, "end of file");
        let refused = |_: usize| -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            ))
        };
        assert_eq!(direct_io(8192, 4096, refused).unwrap(), 0);
        let broken = |_: usize| -> io::Result<usize> { Err(io::Error::other("disk gone")) };
        assert!(direct_io(8192, 4096, broken).is_err());
    }

    /// Through the direct handle where the filesystem allows (ext4 and XFS
    /// do), or the ordinary one: the bytes on disk are the ones written,
    /// however the writes fall on blocks and buffers.
    #[test]
    fn bytes_written_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        let (name, file) = target.create_temp("t", "part").unwrap();
        let part = PartFile::open(&target, &name, file);
        let size = 3 * ALIGN * 16 + 123;
        let body: Vec<u8> = (0..size).map(|i| (i * 13 + i / 4099) as u8).collect();
        part.set_len(size as u64).unwrap();
        // An aligned buffer (as the pool's are), used at aligned and odd offsets.
        let mut pool = vec![0u8; size + 2 * ALIGN];
        let pad = pool.as_ptr().align_offset(ALIGN).min(ALIGN);
        let pieces = [
            (0, 2 * ALIGN),
            (2 * ALIGN, 5000),
            (2 * ALIGN + 5000, 40_000),
        ];
        let mut at = 0;
        for (start, len) in pieces
            .iter()
            .copied()
            .chain([(2 * ALIGN + 45_000, size - 2 * ALIGN - 45_000)])
        {
            assert_eq!(start, at);
            let buf = &mut pool[pad..pad + len];
            buf.copy_from_slice(&body[start..start + len]);
            part.write_all_at(buf, start as u64).unwrap();
            at += len;
        }
        let how = if part.is_direct() {
            "direct"
        } else {
            "buffered"
        };
        let on_disk = std::fs::read(target.tmp_path(&name)).unwrap();
        assert!(on_disk == body, "{how} writes: the bytes differ");
        // Read back through both handles, from aligned and odd offsets,
        // with short counts followed as `read_at` callers do.
        for (start, len) in [(0, size), (5000, 3 * ALIGN + 7), (size - 100, 100)] {
            let (mut at, end) = (start, start + len);
            let buf = &mut pool[pad..pad + len];
            while at < end {
                let n = part.read_at(&mut buf[at - start..], at as u64).unwrap();
                assert!(n > 0, "{how} reads: early end at {at}");
                at += n;
            }
            assert!(buf[..] == body[start..end], "{how} reads at {start}");
        }
        let mut past = [0u8; 8];
        assert_eq!(part.read_at(&mut past, size as u64).unwrap(), 0);
    }
}
