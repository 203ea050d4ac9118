//! The exporter's bounded batcher: records wait in a queue capped by count and bytes, leave in
//! batches, and a failed batch is retried with exponential backoff up to a maximum of attempts.
//!
//! Pure and clock-injected (every call takes `now_ms`), so every rule is tested natively; the
//! exporter module feeds it from the shared queue and its tick, and sends what it hands out.
//! One batch is in flight at a time: a slow or failing receiver holds one batch, and the queue
//! behind it fills to its cap and then drops, counted, instead of growing.

use std::collections::VecDeque;

/// Why a record was dropped (the `reason` label of `llmobs.eval_export.records_dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The queue held `max_queued_records` already.
    QueueFull,
    /// The record would take the queue past `max_queued_bytes`.
    QueueBytes,
    /// One record larger than `batch_max_bytes`: it could never be sent.
    TooLarge,
    /// Its batch failed `max_attempts` times.
    MaxAttempts,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::QueueBytes => "queue_bytes",
            DropReason::TooLarge => "too_large",
            DropReason::MaxAttempts => "max_attempts",
        }
    }
}

/// The batcher's limits (validated by the exporter configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_queued_records: usize,
    pub max_queued_bytes: usize,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    /// A partial batch leaves once its oldest record waited this long.
    pub flush_interval_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Sends per batch, the first included.
    pub max_attempts: u32,
}

/// A batch handed out to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Vec<u8>>,
    /// The send this is, from 1.
    pub attempt: u32,
}

/// What a finished send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: this many records.
    Sent(usize),
    /// Failed; retried after `retry_in_ms`.
    Retrying { retry_in_ms: u64 },
    /// Failed for the last time: this many records dropped (`max_attempts`).
    GaveUp(usize),
}

#[derive(Debug)]
struct Held {
    records: Vec<Vec<u8>>,
    bytes: usize,
    attempt: u32,
    /// When it may be sent (again).
    due_ms: u64,
}

#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    queue: VecDeque<(Vec<u8>, u64)>,
    queue_bytes: usize,
    /// The batch being sent, or waiting for its retry.
    held: Option<Held>,
    in_flight: bool,
}

impl Batcher {
    pub fn new(limits: Limits) -> Self {
        Self { limits, queue: VecDeque::new(), queue_bytes: 0, held: None, in_flight: false }
    }

    /// Bytes held: queued records and the batch being sent or retried (the gauge).
    pub fn held_bytes(&self) -> usize {
        self.queue_bytes + self.held.as_ref().map_or(0, |h| h.bytes)
    }

    pub fn held_records(&self) -> usize {
        self.queue.len() + self.held.as_ref().map_or(0, |h| h.records.len())
    }

    /// Queues one encoded record, or says why it was dropped. The caps count the batch in
    /// flight too: memory stays under `max_queued_bytes` whatever the receiver does.
    pub fn push(&mut self, record: Vec<u8>, now_ms: u64) -> Result<(), DropReason> {
        if record.len() > self.limits.batch_max_bytes {
            return Err(DropReason::TooLarge);
        }
        if self.held_records() >= self.limits.max_queued_records {
            return Err(DropReason::QueueFull);
        }
        if self.held_bytes() + record.len() > self.limits.max_queued_bytes {
            return Err(DropReason::QueueBytes);
        }
        self.queue_bytes += record.len();
        self.queue.push_back((record, now_ms));
        Ok(())
    }

    /// The batch to send now, if any: a due retry first; else queued records when a batch is
    /// full or the oldest waited `flush_interval_ms`. Nothing while a send is in flight.
    pub fn next(&mut self, now_ms: u64) -> Option<Batch> {
        if self.in_flight {
            return None;
        }
        if let Some(held) = &self.held {
            if now_ms < held.due_ms {
                return None;
            }
            self.in_flight = true;
            return Some(Batch { records: held.records.clone(), attempt: held.attempt });
        }
        let (_, oldest) = self.queue.front()?;
        let full = self.queue.len() >= self.limits.batch_max_records || self.queue_bytes >= self.limits.batch_max_bytes;
        if !full && now_ms.saturating_sub(*oldest) < self.limits.flush_interval_ms {
            return None;
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some((record, _)) = self.queue.front() {
            if records.len() >= self.limits.batch_max_records
                || (!records.is_empty() && bytes + record.len() > self.limits.batch_max_bytes)
            {
                break;
            }
            let Some((record, _)) = self.queue.pop_front() else { break };
            bytes += record.len();
            records.push(record);
        }
        self.queue_bytes -= bytes;
        self.held = Some(Held { records: records.clone(), bytes, attempt: 1, due_ms: now_ms });
        self.in_flight = true;
        Some(Batch { records, attempt: 1 })
    }

    /// The result of the send [`next`](Self::next) handed out. A send never handed out is
    /// ignored (`Sent(0)`).
    pub fn finished(&mut self, ok: bool, now_ms: u64) -> Outcome {
        if !self.in_flight {
            return Outcome::Sent(0);
        }
        self.in_flight = false;
        let Some(mut held) = self.held.take() else { return Outcome::Sent(0) };
        if ok {
            return Outcome::Sent(held.records.len());
        }
        if held.attempt >= self.limits.max_attempts {
            return Outcome::GaveUp(held.records.len());
        }
        let retry_in_ms = self.backoff_ms(held.attempt);
        held.attempt += 1;
        held.due_ms = now_ms.saturating_add(retry_in_ms);
        self.held = Some(held);
        Outcome::Retrying { retry_in_ms }
    }

    /// The wait after failed send `attempt` (from 1): the initial backoff doubled per attempt,
    /// capped.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let doubled = self.limits.initial_backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        doubled.min(self.limits.max_backoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_queued_records: 5,
            max_queued_bytes: 100,
            batch_max_records: 3,
            batch_max_bytes: 40,
            flush_interval_ms: 1000,
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
            max_attempts: 3,
        }
    }

    fn record(n: usize) -> Vec<u8> {
        vec![b'r'; n]
    }

    #[test]
    fn a_partial_batch_waits_for_the_flush_interval_of_its_oldest_record() {
        let mut b = Batcher::new(limits());
        b.push(record(5), 0).expect("queued");
        b.push(record(5), 900).expect("queued");
        assert_eq!(b.next(999), None);
        let batch = b.next(1000).expect("due");
        assert_eq!((batch.records.len(), batch.attempt), (2, 1));
    }

    #[test]
    fn a_full_batch_leaves_at_once_and_holds_at_most_batch_max_records() {
        let mut b = Batcher::new(limits());
        for _ in 0..4 {
            b.push(record(5), 0).expect("queued");
        }
        let batch = b.next(0).expect("full");
        assert_eq!(batch.records.len(), 3);
        assert_eq!(b.held_records(), 4);
    }

    #[test]
    fn a_batch_stops_before_batch_max_bytes() {
        let mut b = Batcher::new(limits());
        for _ in 0..3 {
            b.push(record(15), 0).expect("queued");
        }
        assert_eq!(b.next(0).expect("over bytes").records.len(), 2);
    }

    #[test]
    fn the_queue_drops_over_its_record_and_byte_caps_counting_the_batch_in_flight() {
        let mut b = Batcher::new(limits());
        for _ in 0..3 {
            b.push(record(30), 0).expect("queued");
        }
        assert_eq!(b.push(record(30), 0), Err(DropReason::QueueBytes));
        let _ = b.next(0).expect("sent");
        // The batch in flight still holds its bytes.
        assert_eq!(b.push(record(30), 0), Err(DropReason::QueueBytes));
        assert_eq!(b.push(record(41), 0), Err(DropReason::TooLarge));
        let mut c = Batcher::new(limits());
        for _ in 0..5 {
            c.push(record(1), 0).expect("queued");
        }
        assert_eq!(c.push(record(1), 0), Err(DropReason::QueueFull));
        assert_eq!(c.held_bytes(), 5);
    }

    #[test]
    fn one_send_is_in_flight_at_a_time() {
        let mut b = Batcher::new(limits());
        for _ in 0..5 {
            b.push(record(1), 0).expect("queued");
        }
        assert!(b.next(0).is_some());
        assert_eq!(b.next(5000), None);
        assert_eq!(b.finished(true, 10), Outcome::Sent(3));
        assert_eq!(b.next(5000).expect("the rest").records.len(), 2);
    }

    #[test]
    fn a_failed_batch_is_retried_with_doubling_capped_backoff_then_dropped() {
        let mut b = Batcher::new(limits());
        b.push(record(3), 0).expect("queued");
        let first = b.next(1000).expect("due");
        assert_eq!(b.finished(false, 1000), Outcome::Retrying { retry_in_ms: 100 });
        assert_eq!(b.next(1099), None);
        let second = b.next(1100).expect("retry");
        assert_eq!((second.records.clone(), second.attempt), (first.records, 2));
        assert_eq!(b.finished(false, 1100), Outcome::Retrying { retry_in_ms: 200 });
        assert!(b.next(1300).is_some());
        assert_eq!(b.finished(false, 1300), Outcome::GaveUp(1));
        assert_eq!((b.held_records(), b.held_bytes()), (0, 0));
        assert_eq!(b.backoff_ms(3), 350, "capped at max_backoff_ms");
    }

    #[test]
    fn records_queued_during_a_retry_wait_behind_it() {
        let mut b = Batcher::new(limits());
        b.push(record(1), 0).expect("queued");
        let _ = b.next(1000);
        let _ = b.finished(false, 1000);
        b.push(record(2), 1000).expect("queued");
        assert_eq!(b.next(2500).expect("retry first").records, vec![record(1)]);
        assert_eq!(b.finished(true, 2500), Outcome::Sent(1));
        assert_eq!(b.next(2500).expect("then the queue").records, vec![record(2)]);
    }

    #[test]
    fn a_result_without_a_send_changes_nothing() {
        let mut b = Batcher::new(limits());
        b.push(record(1), 0).expect("queued");
        assert_eq!(b.finished(false, 0), Outcome::Sent(0));
        assert_eq!(b.held_records(), 1);
    }
}
