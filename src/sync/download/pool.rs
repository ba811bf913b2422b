//! A fixed set of write buffers. Every GET holds one for its whole life, so
//! the number of buffers is both the request concurrency and the memory
//! bound: `concurrency × buffer_size`, whatever the object or part sizes.
//! Each buffer's bytes start at an address aligned to [`ALIGN`] (a few
//! bytes of padding in front), so they can be written with direct I/O
//! ([`super::direct`]).

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::direct::ALIGN;

/// `count` buffers of `size` bytes, handed out one per request.
#[derive(Debug)]
pub struct BufferPool {
    permits: Semaphore,
    free: Mutex<Vec<Vec<u8>>>,
    size: usize,
}

impl BufferPool {
    pub fn new(count: usize, size: usize) -> Self {
        Self {
            permits: Semaphore::new(count.max(1)),
            free: Mutex::new(Vec::new()),
            size: size.max(1),
        }
    }

    /// Wait for a free buffer (first come, first served).
    pub async fn acquire(&self) -> PooledBuf<'_> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let buf = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(self.size + ALIGN));
        PooledBuf {
            pool: self,
            buf: Some(buf),
            _permit: permit,
        }
    }
}

/// A buffer on loan; goes back to the pool when dropped.
#[derive(Debug)]
pub struct PooledBuf<'a> {
    pool: &'a BufferPool,
    buf: Option<Vec<u8>>,
    _permit: SemaphorePermit<'a>,
}

impl PooledBuf<'_> {
    /// The buffer's contents so far.
    pub fn data(&self) -> &[u8] {
        self.buf.as_deref().map(payload).unwrap_or_default()
    }

    /// Append as much of `bytes` as fits; returns how much was taken.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let size = self.pool.size;
        let buf = self
            .buf
            .get_or_insert_with(|| Vec::with_capacity(size + ALIGN));
        if buf.is_empty() {
            buf.resize(pad(buf), 0);
        }
        let n = bytes.len().min(size - payload(buf).len());
        buf.extend_from_slice(&bytes[..n]);
        n
    }

    pub fn is_full(&self) -> bool {
        self.data().len() >= self.pool.size
    }

    /// Lend the bytes out (to a blocking write; [`payload`] gives them);
    /// give them back with [`Self::restore`].
    pub fn take(&mut self) -> Vec<u8> {
        self.buf.take().unwrap_or_default()
    }

    /// Put a taken buffer back, emptied.
    pub fn restore(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.buf = Some(buf);
    }

    /// Lend the buffer out as scratch space of the pool's buffer size, starting
    /// at an aligned address (for reads); give it back with [`Self::restore`].
    pub fn scratch(&mut self) -> Scratch {
        let mut buf = self.take();
        buf.clear();
        let start = pad(&buf);
        buf.resize(start + self.pool.size, 0);
        Scratch { buf, start }
    }
}

/// A pooled buffer lent out as aligned scratch space ([`PooledBuf::scratch`]).
#[derive(Debug)]
pub struct Scratch {
    buf: Vec<u8>,
    start: usize,
}

impl Scratch {
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// The buffer, to [`PooledBuf::restore`].
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Padding in front of `buf`'s bytes that puts them at an [`ALIGN`]ed
/// address (0 in the unlikely case that the platform cannot say).
fn pad(buf: &[u8]) -> usize {
    let pad = buf.as_ptr().align_offset(ALIGN);
    if pad < ALIGN { pad } else { 0 }
}

/// The bytes of a taken buffer, after its padding.
pub fn payload(buf: &[u8]) -> &[u8] {
    &buf[pad(buf).min(buf.len())..]
}

impl Drop for PooledBuf<'_> {
    fn drop(&mut self) {
        if let (Some(mut buf), Ok(mut free)) = (self.buf.take(), self.pool.free.lock()) {
            buf.clear();
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_bounded_and_reused() {
        let pool = BufferPool::new(2, 4);
        let mut a = pool.acquire().await;
        let _b = pool.acquire().await;
        assert_eq!(a.fill(b"abcdef"), 4);
        assert!(a.is_full());
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire()).await;
        assert!(third.is_err(), "a third buffer must wait");
        drop(a);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let c = pool.acquire().await;
        assert!(c.data().is_empty(), "a reused buffer starts empty");
        assert_eq!(
            pool.free.lock().unwrap().len(),
            0,
            "the free buffer was reused"
        );
    }
}
