//! The bounded queue of frames waiting to be written to one connection.
//!
//! Producers (the broker, on behalf of any peer) push without ever waiting;
//! the connection's task takes the whole queue at once and writes it as one
//! batch with a single flush. A push that would exceed the bound closes the
//! outbox instead: the connection is then dropped as a slow consumer, and no
//! sender is slowed down by it.
//!
//! All outboxes also share one [`OutboxBudget`], a bound on the bytes queued
//! for all connections together. A push that would exceed it closes the
//! outbox pushed to as a slow consumer if that outbox already holds frames
//! (its client is behind); a frame for an outbox that is empty still goes
//! through, since its writer takes it at once, so the budget is overshot by
//! at most one frame per connection. And while more than half the budget is
//! in use, an outbox whose frames were not taken for a whole heartbeat
//! interval (its socket is blocked) is closed as a slow consumer at the next
//! heartbeat, so clients that never read cannot hold the budget for long.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

pub use crate::shared_text::SharedText;

/// Why an outbox stopped taking frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Frames piled up past the bound: the client does not read fast enough.
    SlowConsumer,
    /// The peer resumed on another connection; this one is stale.
    Replaced,
    /// The server is shutting down.
    Shutdown,
}

/// The bytes queued in all outboxes together, and their bound.
#[derive(Debug)]
pub struct OutboxBudget {
    used: AtomicUsize,
    limit: usize,
}

impl OutboxBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes queued now in all outboxes sharing this budget.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit, or if `force`; returns whether taken.
    fn take(&self, bytes: usize, force: bool) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if force || before.saturating_add(bytes) <= self.limit {
            return true;
        }
        self.release(bytes);
        false
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether more than half the budget is in use.
    fn under_pressure(&self) -> bool {
        self.used() > self.limit / 2
    }
}

/// A bounded, non-blocking frame queue with a wake-up for its one reader.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    max_frames: usize,
    max_bytes: usize,
    budget: Arc<OutboxBudget>,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<SharedText>,
    bytes: usize,
    /// Bytes of frames the reader took and has not written yet; they stay
    /// counted against the shared budget until [`Outbox::sent`].
    taken: usize,
    closed: Option<CloseReason>,
    /// A heartbeat is due: the reader checks for idleness and pings.
    heartbeat: bool,
    /// Frames were queued at the last heartbeat and none were taken since.
    stalled: bool,
    /// The reader's waker while it waits; a plain slot is cheaper than a
    /// general notification primitive, and there is only one reader.
    waker: Option<Waker>,
}

/// What the connection takes out of its outbox in one go.
#[derive(Debug)]
pub struct Batch {
    /// Frames to write, oldest first.
    pub frames: VecDeque<SharedText>,
    /// Set once the outbox is closed; the connection should end after writing.
    pub closed: Option<CloseReason>,
    /// A heartbeat came due since the last take.
    pub heartbeat: bool,
}

impl Outbox {
    /// An empty outbox holding at most `max_frames` frames and `max_bytes`
    /// bytes, its bytes also counted against the shared `budget`.
    pub fn new(max_frames: usize, max_bytes: usize, budget: Arc<OutboxBudget>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_frames,
            max_bytes,
            budget,
        }
    }

    /// Queues a frame. Returns `false` when the outbox is closed, or when the
    /// frame does not fit (in this outbox, or in the shared budget while this
    /// outbox holds frames), in which case the outbox closes as a slow
    /// consumer.
    pub fn push(&self, frame: SharedText) -> bool {
        let mut state = self.lock();
        if state.closed.is_some() {
            return false;
        }
        let bytes = state.bytes + frame.len();
        if state.frames.len() >= self.max_frames
            || bytes > self.max_bytes
            || !self.budget.take(frame.len(), state.frames.is_empty())
        {
            self.close_slow(state);
            return false;
        }
        state.bytes = bytes;
        state.frames.push_back(frame);
        wake(state);
        true
    }

    /// Closes as a slow consumer, dropping the queued frames.
    fn close_slow(&self, mut state: MutexGuard<'_, State>) {
        state.closed = Some(CloseReason::SlowConsumer);
        state.frames = VecDeque::new();
        self.budget.release(std::mem::take(&mut state.bytes));
        wake(state);
    }

    /// Stops taking frames; queued ones are still handed to the reader.
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        wake(state);
    }

    /// Takes everything queued. The queue's memory goes with it, so an idle
    /// connection holds no queue allocation. The frames' bytes stay counted
    /// against the shared budget until the reader says they were written
    /// ([`Outbox::sent`]): a reader blocked on its socket holds them still.
    pub fn take(&self) -> Batch {
        let mut state = self.lock();
        state.taken += std::mem::take(&mut state.bytes);
        state.stalled = false;
        Batch {
            frames: std::mem::take(&mut state.frames),
            closed: state.closed,
            heartbeat: std::mem::take(&mut state.heartbeat),
        }
    }

    /// Everything taken so far was written: its bytes leave the shared budget.
    pub fn sent(&self) {
        let mut state = self.lock();
        self.budget.release(std::mem::take(&mut state.taken));
    }

    /// Like [`Outbox::take`] without taking the frames: for a reader whose
    /// socket is blocked and cannot write more yet.
    pub fn take_status(&self) -> (Option<CloseReason>, bool) {
        let mut state = self.lock();
        (state.closed, std::mem::take(&mut state.heartbeat))
    }

    /// Marks a heartbeat as due and wakes the reader. One timer for all
    /// connections, instead of one per connection polled on every wake-up.
    /// Closes the outbox as a slow consumer if its frames were not taken
    /// since the previous heartbeat while the shared budget is under
    /// pressure.
    pub fn heartbeat(&self) {
        let mut state = self.lock();
        if state.stalled && state.closed.is_none() && self.budget.under_pressure() {
            self.close_slow(state);
            return;
        }
        state.stalled = !state.frames.is_empty();
        state.heartbeat = true;
        wake(state);
    }

    /// Whether the outbox was closed, and why.
    pub fn closed(&self) -> Option<CloseReason> {
        self.lock().closed
    }

    /// Completes once the outbox is closed or a heartbeat is due or, if
    /// `frames_wanted`, once it holds frames. The reader passes `false` while its socket is blocked,
    /// so it still learns of a close (slow consumer) without spinning on
    /// frames it cannot take yet.
    pub async fn wanted(&self, frames_wanted: bool) {
        poll_fn(|cx| self.poll_wanted(cx, frames_wanted)).await;
    }

    fn poll_wanted(&self, cx: &mut Context<'_>, frames_wanted: bool) -> Poll<()> {
        let mut state = self.lock();
        if state.closed.is_some() || state.heartbeat || (frames_wanted && !state.frames.is_empty())
        {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // critical section is a few field updates.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        self.budget.release(state.bytes + state.taken);
    }
}

/// Wakes the reader, outside the lock.
fn wake(mut state: MutexGuard<'_, State>) {
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(max_frames: usize, max_bytes: usize) -> Outbox {
        Outbox::new(max_frames, max_bytes, OutboxBudget::new(usize::MAX))
    }

    #[test]
    fn takes_frames_in_order() {
        let outbox = outbox(4, 1024);
        assert!(outbox.push(SharedText::from("a")));
        assert!(outbox.push(SharedText::from("b")));
        let batch = outbox.take();
        assert_eq!(batch.frames, [SharedText::from("a"), SharedText::from("b")]);
        assert_eq!(batch.closed, None);
        assert!(outbox.take().frames.is_empty());
    }

    #[test]
    fn overflow_by_count_closes_as_slow_consumer() {
        let outbox = outbox(2, 1024);
        assert!(outbox.push(SharedText::from("a")));
        assert!(outbox.push(SharedText::from("b")));
        assert!(!outbox.push(SharedText::from("c")));
        let batch = outbox.take();
        assert!(batch.frames.is_empty(), "queued frames are dropped");
        assert_eq!(batch.closed, Some(CloseReason::SlowConsumer));
        assert!(!outbox.push(SharedText::from("d")));
    }

    #[test]
    fn overflow_by_bytes_closes_as_slow_consumer() {
        let outbox = outbox(100, 5);
        assert!(outbox.push(SharedText::from("abc")));
        assert!(!outbox.push(SharedText::from("def")));
        assert_eq!(outbox.closed(), Some(CloseReason::SlowConsumer));
    }

    #[test]
    fn taking_frees_byte_budget() {
        let outbox = outbox(100, 5);
        assert!(outbox.push(SharedText::from("abc")));
        outbox.take();
        assert!(outbox.push(SharedText::from("def")));
    }

    #[test]
    fn close_keeps_queued_frames_and_first_reason() {
        let outbox = outbox(4, 1024);
        assert!(outbox.push(SharedText::from("a")));
        outbox.close(CloseReason::Replaced);
        outbox.close(CloseReason::SlowConsumer);
        let batch = outbox.take();
        assert_eq!(batch.frames, [SharedText::from("a")]);
        assert_eq!(batch.closed, Some(CloseReason::Replaced));
    }

    #[tokio::test]
    async fn close_wakes_a_reader_that_wants_no_frames() {
        let outbox = std::sync::Arc::new(outbox(1, 1024));
        let reader = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                outbox.wanted(false).await;
                outbox.closed()
            })
        };
        tokio::task::yield_now().await;
        assert!(outbox.push(SharedText::from("a")));
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "frames alone do not wake it");
        assert!(!outbox.push(SharedText::from("b")));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(CloseReason::SlowConsumer));
    }

    #[test]
    fn heartbeat_is_taken_once() {
        let outbox = outbox(4, 1024);
        outbox.heartbeat();
        assert_eq!(outbox.take_status(), (None, true));
        assert_eq!(outbox.take_status(), (None, false));
        outbox.heartbeat();
        assert!(outbox.take().heartbeat);
        assert!(!outbox.take().heartbeat);
    }

    #[tokio::test]
    async fn push_wakes_the_reader() {
        let outbox = std::sync::Arc::new(outbox(4, 1024));
        let reader = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                outbox.wanted(true).await;
                outbox.take().frames.len()
            })
        };
        tokio::task::yield_now().await;
        assert!(outbox.push(SharedText::from("a")));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, 1);
    }

    #[test]
    fn shared_budget_closes_the_outbox_with_a_backlog() {
        let budget = OutboxBudget::new(8);
        let slow = Outbox::new(100, 1024, budget.clone());
        let other = Outbox::new(100, 1024, budget.clone());
        assert!(slow.push(SharedText::from("aaaa")));
        assert!(slow.push(SharedText::from("bbbb")));
        assert_eq!(budget.used(), 8);
        // An empty outbox still gets its frame: its writer takes it at once.
        assert!(other.push(SharedText::from("cc")));
        assert_eq!(budget.used(), 10);
        // One with a backlog is closed, and its bytes returned.
        assert!(!slow.push(SharedText::from("dd")));
        assert_eq!(slow.closed(), Some(CloseReason::SlowConsumer));
        assert_eq!(budget.used(), 2);
        assert!(other.push(SharedText::from("ee")));
        assert_eq!(other.take().frames.len(), 2);
        // Taken but not written yet: still counted.
        assert_eq!(budget.used(), 4);
        other.sent();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn frames_taken_and_not_written_count_against_the_budget() {
        let budget = OutboxBudget::new(8);
        let blocked = Outbox::new(100, 1024, budget.clone());
        assert!(blocked.push(SharedText::from("aaaaaa")));
        // The reader took them, and its socket holds them up.
        assert_eq!(blocked.take().frames.len(), 1);
        assert!(blocked.push(SharedText::from("bb")));
        // Over the budget with a backlog: closed, though its queue is short.
        assert!(!blocked.push(SharedText::from("c")));
        assert_eq!(blocked.closed(), Some(CloseReason::SlowConsumer));
        assert_eq!(budget.used(), 6);
        drop(blocked);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn dropped_outbox_returns_its_bytes() {
        let budget = OutboxBudget::new(1024);
        let outbox = Outbox::new(100, 1024, budget.clone());
        assert!(outbox.push(SharedText::from("abc")));
        outbox.close(CloseReason::Shutdown);
        assert_eq!(budget.used(), 3);
        drop(outbox);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn stalled_outbox_is_closed_at_a_heartbeat_under_pressure() {
        let budget = OutboxBudget::new(8);
        let stalled = Outbox::new(100, 1024, budget.clone());
        let reading = Outbox::new(100, 1024, budget.clone());
        assert!(stalled.push(SharedText::from("aaaaa")));
        assert!(reading.push(SharedText::from("b")));
        stalled.heartbeat();
        reading.heartbeat();
        reading.take();
        reading.sent();
        assert!(reading.push(SharedText::from("c")));
        stalled.heartbeat();
        reading.heartbeat();
        assert_eq!(stalled.closed(), Some(CloseReason::SlowConsumer));
        assert_eq!(reading.closed(), None, "its frames were taken in between");
        assert_eq!(budget.used(), 1);

        // Without pressure, a stalled outbox is left alone.
        let relaxed = Outbox::new(100, 1024, OutboxBudget::new(1024));
        assert!(relaxed.push(SharedText::from("x")));
        relaxed.heartbeat();
        relaxed.heartbeat();
        assert_eq!(relaxed.closed(), None);
    }
}
