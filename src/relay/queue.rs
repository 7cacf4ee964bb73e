//! The bounded queue in front of each destination. Its unit is a [`Batch`]
//! of complete plaintext lines, so a producer pays one lock per batch, a
//! writer can send it with one syscall, and the disk spool can store it as
//! one record. It is bounded in lines and in bytes; what happens when it is
//! full is the caller's explicit choice ([`BatchQueue::push`] waits,
//! [`BatchQueue::try_push`] refuses, [`BatchQueue::push_evicting`] evicts).

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// Complete `name value timestamp\n` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The lines, each ending in `\n`.
    pub data: Bytes,
    /// How many lines `data` holds.
    pub lines: u32,
}

#[derive(Debug, Default)]
struct Inner {
    batches: VecDeque<Batch>,
    lines: usize,
    bytes: usize,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer queue of batches.
#[derive(Debug)]
pub struct BatchQueue {
    inner: Mutex<Inner>,
    not_empty: Notify,
    not_full: Notify,
    max_lines: usize,
    max_bytes: usize,
}

impl BatchQueue {
    /// A queue holding at most `max_lines` lines and `max_bytes` bytes. A
    /// single batch larger than that is still taken into an empty queue, so
    /// no input can wedge it.
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        BatchQueue {
            inner: Mutex::new(Inner::default()),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fits(&self, inner: &Inner, b: &Batch) -> bool {
        inner.batches.is_empty()
            || (inner.lines + b.lines as usize <= self.max_lines
                && inner.bytes + b.data.len() <= self.max_bytes)
    }

    fn enqueue(&self, inner: &mut Inner, b: Batch) {
        inner.lines += b.lines as usize;
        inner.bytes += b.data.len();
        inner.batches.push_back(b);
        self.not_empty.notify_one();
    }

    /// Adds a batch if it fits now; gives it back if not.
    pub fn try_push(&self, b: Batch) -> Result<(), Batch> {
        let mut inner = self.lock();
        if self.fits(&inner, &b) {
            self.enqueue(&mut inner, b);
            Ok(())
        } else {
            Err(b)
        }
    }

    /// Adds a batch, waiting for room: this wait is the backpressure.
    pub async fn push(&self, mut b: Batch) {
        loop {
            let room = self.not_full.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(b) {
                Ok(()) => return,
                Err(back) => b = back,
            }
            room.await;
        }
    }

    /// Adds a batch, evicting the oldest batches to make room. Returns the
    /// number of lines evicted.
    pub fn push_evicting(&self, b: Batch) -> u64 {
        let mut inner = self.lock();
        let mut evicted = 0u64;
        while !self.fits(&inner, &b) {
            let Some(old) = inner.batches.pop_front() else {
                break;
            };
            inner.lines -= old.lines as usize;
            inner.bytes -= old.data.len();
            evicted += u64::from(old.lines);
        }
        self.enqueue(&mut inner, b);
        evicted
    }

    /// Adds a batch regardless of the bounds. Only for the last flush of a
    /// closing connection, whose data must be counted as queued rather than
    /// lost; it overshoots by at most one batch per connection.
    pub fn push_overflow(&self, b: Batch) {
        let mut inner = self.lock();
        self.enqueue(&mut inner, b);
    }

    /// Puts back a batch a writer took but could not deliver, ahead of
    /// everything else. It may overshoot the bounds: it was already counted.
    pub fn push_front(&self, b: Batch) {
        let mut inner = self.lock();
        inner.lines += b.lines as usize;
        inner.bytes += b.data.len();
        inner.batches.push_front(b);
        self.not_empty.notify_one();
    }

    /// Takes the oldest batch if any.
    pub fn try_pop(&self) -> Option<Batch> {
        let mut inner = self.lock();
        let b = inner.batches.pop_front()?;
        inner.lines -= b.lines as usize;
        inner.bytes -= b.data.len();
        drop(inner);
        self.not_full.notify_waiters();
        Some(b)
    }

    /// Takes the oldest batch, waiting for one. `None` once the queue is
    /// closed and empty.
    pub async fn pop(&self) -> Option<Batch> {
        loop {
            let ready = self.not_empty.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(b) = self.try_pop() {
                // Another consumer may be waiting too.
                if !self.is_empty() {
                    self.not_empty.notify_one();
                }
                return Some(b);
            }
            if self.lock().closed {
                return None;
            }
            ready.await;
        }
    }

    /// Marks the queue as taking no more input: consumers drain it and then
    /// see `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_waiters();
    }

    /// Whether it is closed and holds nothing: its consumers are done.
    pub fn is_finished(&self) -> bool {
        let inner = self.lock();
        inner.closed && inner.batches.is_empty()
    }

    /// Queued lines.
    pub fn lines(&self) -> usize {
        self.lock().lines
    }

    /// Queued bytes.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().batches.is_empty()
    }

    /// Removes and returns every batch, oldest first.
    pub fn take_all(&self) -> Vec<Batch> {
        let mut inner = self.lock();
        let batches: Vec<Batch> = inner.batches.drain(..).collect();
        inner.lines = 0;
        inner.bytes = 0;
        drop(inner);
        self.not_full.notify_waiters();
        batches
    }

    /// Removes everything, returning the lines removed.
    pub fn clear(&self) -> u64 {
        let mut inner = self.lock();
        let n = inner.lines as u64;
        *inner = Inner {
            closed: inner.closed,
            ..Inner::default()
        };
        drop(inner);
        self.not_full.notify_waiters();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn batch(lines: u32, bytes: usize) -> Batch {
        Batch {
            data: Bytes::from(vec![b'x'; bytes]),
            lines,
        }
    }

    #[test]
    fn bounds_in_lines_and_bytes() {
        let q = BatchQueue::new(10, 100);
        assert!(q.try_push(batch(6, 10)).is_ok());
        assert!(q.try_push(batch(6, 10)).is_err(), "lines bound");
        assert!(q.try_push(batch(1, 95)).is_err(), "bytes bound");
        assert!(q.try_push(batch(4, 90)).is_ok());
        assert_eq!((q.lines(), q.bytes()), (10, 100));
    }

    #[test]
    fn an_oversized_batch_enters_an_empty_queue() {
        let q = BatchQueue::new(1, 1);
        assert!(q.try_push(batch(5, 50)).is_ok());
    }

    #[test]
    fn eviction_counts_what_it_drops() {
        let q = BatchQueue::new(10, 1000);
        q.try_push(batch(5, 1)).unwrap();
        q.try_push(batch(5, 1)).unwrap();
        assert_eq!(q.push_evicting(batch(3, 1)), 5);
        assert_eq!(q.lines(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn push_waits_for_room_then_proceeds() {
        let q = Arc::new(BatchQueue::new(1, 1000));
        q.push(batch(1, 1)).await;
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(batch(1, 2)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!pusher.is_finished(), "must block while full");
        assert_eq!(q.pop().await.unwrap().data.len(), 1);
        pusher.await.unwrap();
        assert_eq!(q.pop().await.unwrap().data.len(), 2);
    }

    #[tokio::test]
    async fn close_lets_consumers_drain_then_stop() {
        let q = BatchQueue::new(10, 100);
        q.try_push(batch(1, 1)).unwrap();
        q.close();
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_none());
    }
}
