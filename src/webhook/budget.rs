//! The review budget: how many bytes of request bodies, and how many
//! (estimated) bytes of decoding, the webhook holds at once.
//!
//! Two weighted semaphores, taken in a fixed order by each `POST /mutate`:
//! first the body's length (from `Content-Length`, or the body limit when a
//! client sends none) before one byte of the body is read, then the review's
//! estimated decoding cost ([`footprint`](super::footprint)) before anything
//! is decoded. Both are held until the answer is built. A request that
//! cannot get its share within `queue_wait` gets 503 with `Retry-After`, so
//! a burst waits its turn and an overload is refused instead of growing the
//! heap. Two pools rather than one so that a request holding its body never
//! waits behind requests that hold nothing yet (which could deadlock until
//! the wait ran out).
//!
//! Permits count KiB, so that budgets of gigabytes still fit a semaphore.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Limits;

const UNIT: usize = 1024;

/// Why a share of the budget was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The budget stayed full for the whole wait: try again later.
    Busy,
    /// More than the whole budget: this request can never be served.
    TooLarge { budget: usize },
}

/// The two pools, shared by every request.
#[derive(Debug)]
pub struct Budget {
    bodies: Pool,
    decoding: Pool,
    wait: Duration,
}

#[derive(Debug)]
struct Pool {
    semaphore: Arc<Semaphore>,
    bytes: usize,
}

/// A share of a pool, given back when dropped.
#[derive(Debug)]
pub struct Share {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Self {
            bodies: Pool::new(limits.body_budget),
            decoding: Pool::new(limits.decode_budget),
            wait: limits.queue_wait,
        }
    }

    /// Room for a body of `bytes`.
    pub async fn body(&self, bytes: usize) -> Result<Share, Refusal> {
        self.bodies.take(bytes, self.wait).await
    }

    /// Room for decoding a review estimated at `bytes`.
    pub async fn decoding(&self, bytes: usize) -> Result<Share, Refusal> {
        self.decoding.take(bytes, self.wait).await
    }

    /// The decode budget in bytes.
    pub fn decode_budget(&self) -> usize {
        self.decoding.bytes
    }
}

impl Pool {
    fn new(bytes: usize) -> Self {
        let units = units(bytes).min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(units)),
            bytes,
        }
    }

    async fn take(&self, bytes: usize, wait: Duration) -> Result<Share, Refusal> {
        let wanted = units(bytes);
        let Ok(wanted) = u32::try_from(wanted) else {
            return Err(Refusal::TooLarge { budget: self.bytes });
        };
        if wanted as usize > units(self.bytes) {
            return Err(Refusal::TooLarge { budget: self.bytes });
        }
        let acquire = Arc::clone(&self.semaphore).acquire_many_owned(wanted);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(Share { _permit: permit }),
            // The semaphore is never closed; a timeout is the only refusal.
            Ok(Err(_)) | Err(_) => Err(Refusal::Busy),
        }
    }
}

/// Bytes as whole KiB, rounded up.
fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(body: usize, decode: usize) -> Budget {
        Budget::new(&Limits {
            body_budget: body,
            decode_budget: decode,
            queue_wait: Duration::from_millis(50),
            ..Limits::default()
        })
    }

    #[tokio::test]
    async fn shares_wait_for_room_then_are_refused() {
        let b = budget(10 * UNIT, 4 * UNIT);
        let first = b.body(6 * UNIT).await.expect("room");
        let second = b.body(4 * UNIT).await.expect("room for the rest");
        assert_eq!(b.body(1).await.unwrap_err(), Refusal::Busy);
        drop(first);
        let third = b.body(5 * UNIT).await.expect("room again");
        drop((second, third));
        // The pools are independent.
        let _all_bodies = b.body(10 * UNIT).await.expect("whole body pool");
        let _decode = b.decoding(4 * UNIT).await.expect("decode pool untouched");
    }

    #[tokio::test]
    async fn a_waiting_share_gets_room_released_during_its_wait() {
        let b = Arc::new(budget(4 * UNIT, UNIT));
        let held = b.body(4 * UNIT).await.expect("room");
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.body(2 * UNIT).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_too_large() {
        let b = budget(4 * UNIT, 8 * UNIT);
        assert_eq!(
            b.decoding(8 * UNIT + 1).await.unwrap_err(),
            Refusal::TooLarge { budget: 8 * UNIT }
        );
        assert_eq!(
            b.decoding(usize::MAX).await.unwrap_err(),
            Refusal::TooLarge { budget: 8 * UNIT }
        );
        assert!(b.decoding(8 * UNIT).await.is_ok());
    }
}
