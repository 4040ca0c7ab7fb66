//! The recorder: one thread that takes finished exchanges off the proxy's
//! hands. For each, in arrival order, it gives the next id, builds the
//! judged and masked `Record`, writes the log line, adds it to the summary,
//! and appends it to the recording. Lines are written as soon as the queue
//! runs dry (one `write` for a burst) and the file is synced on close.
//!
//! Nothing is dropped. The queue is bounded; when it is full the exchange
//! waits (in a task, never blocking the runtime) and the log says the
//! recorder is behind. When recording to a file, a response's last bytes
//! go to the client only after its line is written, so a client that saw a
//! whole response finds it in the recording even if the proxy is killed.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::{Config, Finished, Record};
use crate::metrics::Metrics;
use crate::report::Summary;

/// Exchanges the queue holds before new ones wait.
const QUEUE: usize = 4096;

/// Exchanges written with one `write`, at most.
const BATCH: usize = 256;

/// Batches closer together than this mean the proxy is busy...
const BUSY: Duration = Duration::from_millis(2);

/// ...and then the recorder pauses this long after a batch, so the next one
/// gathers the exchanges that finish meanwhile. Each wake-up of this thread
/// (and of the log writer after it) is a context switch on the proxy's CPU;
/// at 15,000 exchanges a second, taking them one by one cost a fifth of the
/// proxy's CPU time. A response waiting for its line (`--record FILE`)
/// waits at most this much longer; an idle proxy records at once.
const LINGER: Duration = Duration::from_millis(1);

/// Recent exchanges kept in memory for the admin API (`/exchanges`); the
/// file stays the record.
pub const RING: usize = 10_000;

/// ...and what they may weigh together. With 64 KiB of body kept per
/// exchange, 10,000 of them would hold 640 MiB (more as base64); the oldest
/// go first once the ring passes this.
pub const RING_BYTES: usize = 64 * 1024 * 1024;

/// What the recorder shares with the admin API while it runs.
#[derive(Debug)]
struct Live {
    summary: Mutex<Summary>,
    /// Locked before `summary` wherever both are held, so that a reset falls
    /// between two exchanges, never inside one.
    ring: Mutex<Ring>,
    /// Each recorded exchange as it is recorded (`GET /events`); sent
    /// while the ring is locked, so a subscriber that reads the ring under
    /// the same lock misses and repeats nothing.
    feed: broadcast::Sender<Arc<Record>>,
}

/// How far a `GET /events` subscriber may fall behind before it catches
/// up from the ring instead.
const FEED: usize = 1024;

impl Default for Live {
    fn default() -> Self {
        Self {
            summary: Mutex::default(),
            ring: Mutex::default(),
            feed: broadcast::channel(FEED).0,
        }
    }
}

#[derive(Debug)]
struct Ring {
    records: VecDeque<Arc<Record>>,
    /// What `records` weigh (`weight`).
    bytes: usize,
    /// At most `RING` records, and at most this many bytes of them.
    budget: usize,
    /// The last id before the latest `POST /reset`.
    reset_after: u64,
}

impl Default for Ring {
    fn default() -> Self {
        Self::with_budget(RING_BYTES)
    }
}

impl Ring {
    fn with_budget(budget: usize) -> Self {
        Self {
            records: VecDeque::new(),
            bytes: 0,
            budget,
            reset_after: 0,
        }
    }

    /// Keeps `record`, dropping the oldest while there are more than
    /// `RING` or they weigh more than the budget (the newest is always
    /// kept).
    fn push(&mut self, record: Arc<Record>) {
        let added = weight(&record);
        while !self.records.is_empty()
            && (self.records.len() >= RING || self.bytes + added > self.budget)
        {
            if let Some(old) = self.records.pop_front() {
                // Kept records do not change: the weight pushed is the weight now.
                self.bytes -= weight(&old);
            }
        }
        self.bytes += added;
        self.records.push_back(record);
    }

    /// The records with an id above `id`, oldest first.
    fn after(&self, id: u64) -> impl Iterator<Item = &Arc<Record>> {
        let start = self.records.partition_point(|r| r.id <= id);
        self.records.range(start..)
    }
}

/// About what a record holds in memory: itself and its text. Bodies are
/// what matter; the rest keeps small records from counting as free.
fn weight(record: &Record) -> usize {
    let headers = |h: &super::entry::Headers| {
        h.iter()
            .map(|(name, values)| name.len() + values.iter().map(str::len).sum::<usize>())
            .sum::<usize>()
    };
    let response = &record.response;
    std::mem::size_of::<Record>()
        + record.url.len()
        + record.reason.len()
        + headers(&record.request.headers)
        + headers(&response.headers)
        + response.body.as_ref().map_or(0, String::len)
        + response.body_base64.as_ref().map_or(0, String::len)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why the recording cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open the recording {path}: {source}; pick another file with --record FILE, or --record off"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the recorder thread: {0}")]
    Thread(#[source] std::io::Error),
}

enum Job {
    Exchange(Box<Finished>, Option<oneshot::Sender<()>>),
    Close(oneshot::Sender<Closed>),
}

/// What the recorder hands back when it closes.
#[derive(Debug)]
pub struct Closed {
    /// The run's verdicts.
    pub summary: Summary,
    /// Exchanges recorded in the file this run.
    pub written: u64,
    /// Exchanges that could not be written (disk full, file gone); each
    /// was logged when it happened.
    pub failed: u64,
    /// The ids this run gave (a file appended to holds earlier runs too).
    pub ids: std::ops::Range<u64>,
}

/// The proxy's handle on the recorder thread.
#[derive(Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
    path: Option<PathBuf>,
    body_limit: usize,
    /// Exchanges waiting for room in the queue.
    waiting: TaskTracker,
    last_warning: AtomicU64,
    /// Exchanges that found the queue full and waited.
    waited: AtomicU64,
    epoch: Instant,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// Opens (creating its folder) or appends to the recording and starts the
    /// thread. Ids continue after the last one in an existing file.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, Error> {
        let (file, next_id) = match &config.path {
            Some(path) => {
                let (file, last) = open(path).map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                })?;
                (Some(file), last + 1)
            }
            None => (None, 1),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let keep_body = config.body_limit > 0;
        let live = Arc::new(Live::default());
        let (worker_live, worker_metrics) = (live.clone(), metrics.clone());
        let thread = std::thread::Builder::new()
            .name("authfault-record".to_string())
            .spawn(move || {
                Worker {
                    file,
                    first_id: next_id,
                    next_id,
                    keep_body,
                    live: worker_live,
                    metrics: worker_metrics,
                    written: 0,
                    failed: 0,
                    buf: Vec::with_capacity(64 * 1024),
                }
                .run(rx);
            })
            .map_err(Error::Thread)?;
        Ok(Arc::new(Self {
            tx,
            path: config.path.clone(),
            body_limit: config.body_limit,
            waiting: TaskTracker::new(),
            last_warning: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            epoch: Instant::now(),
            thread: Mutex::new(Some(thread)),
            live,
            metrics,
        }))
    }

    /// The verdict summary so far.
    pub fn summary(&self) -> Summary {
        lock(&self.live.summary).clone()
    }

    /// Starts the summary afresh (`POST /reset`); the file is untouched.
    pub fn reset(&self) {
        let mut ring = lock(&self.live.ring);
        ring.reset_after = ring.records.back().map_or(ring.reset_after, |r| r.id);
        *lock(&self.live.summary) = Summary::default();
    }

    /// Recorded exchanges with an id above `since`, oldest first, at most
    /// `limit`, from those in memory (the last `RING`, `RING_BYTES`).
    pub fn exchanges(&self, since: u64, limit: usize) -> Vec<Arc<Record>> {
        lock(&self.live.ring)
            .after(since)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The exchanges after `since` still in memory, and a receiver of every
    /// exchange recorded after them: nothing missed, nothing twice.
    pub fn follow(&self, since: u64) -> (Vec<Arc<Record>>, broadcast::Receiver<Arc<Record>>) {
        let ring = lock(&self.live.ring);
        (
            ring.after(since).cloned().collect(),
            self.live.feed.subscribe(),
        )
    }

    /// The exchanges since the last reset that are still in memory (the
    /// last `RING`, `RING_BYTES`), oldest first.
    pub fn since_reset(&self) -> Vec<Arc<Record>> {
        let ring = lock(&self.live.ring);
        ring.after(ring.reset_after).cloned().collect()
    }

    /// Exchanges finished but not yet recorded.
    pub fn lag(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The metrics the recorder counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The recording file, if recording to one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether exchanges are written to a file (and so need their request
    /// headers, sizes and bodies kept).
    pub fn is_recording(&self) -> bool {
        self.path.is_some()
    }

    /// Response body bytes kept per exchange.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Hands a finished exchange over. With `ack`, it is signalled once the
    /// line is written (or could not be).
    pub fn submit(&self, finished: Finished, ack: Option<oneshot::Sender<()>>) {
        let job = Job::Exchange(Box::new(finished), ack);
        let job = match self.tx.try_send(job) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("an exchange ended after the recording was closed");
                return;
            }
            Err(mpsc::error::TrySendError::Full(job)) => job,
        };
        self.waited.fetch_add(1, Ordering::Relaxed);
        self.warn_behind();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let tx = self.tx.clone();
                self.waiting.spawn_on(
                    async move {
                        if tx.send(job).await.is_err() {
                            tracing::debug!("an exchange ended after the recording was closed");
                        }
                    },
                    &runtime,
                );
            }
            // Outside the runtime (its last connections being dropped):
            // waiting here blocks nothing else.
            Err(_) => {
                if self.tx.blocking_send(job).is_err() {
                    tracing::debug!("an exchange ended after the recording was closed");
                }
            }
        }
    }

    fn warn_behind(&self) {
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now > last
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "the recorder is behind ({QUEUE} exchanges queued): exchanges wait for it rather than be lost; is the disk slow or full?"
            );
        }
    }

    /// Writes what is queued, syncs the file, stops the thread and returns
    /// the summary. Exchanges that end later are not recorded.
    pub async fn close(&self) -> Option<Closed> {
        self.waiting.close();
        self.waiting.wait().await;
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Close(tx)).await.is_err() {
            return None;
        }
        let closed = rx.await.ok();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        closed
    }
}

/// Opens `path` for appending, creating it and its folder, and finds the
/// last id already in it.
fn open(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    let last = last_id(&mut file).unwrap_or(0);
    // A run killed mid-write can leave a cut last line: end it, so the next
    // record starts on a line of its own (report skips the fragment).
    if ends_mid_line(&mut file)? {
        file.write_all(b"\n")?;
    }
    Ok((file, last))
}

fn ends_mid_line(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// The id of the last complete line of an existing recording.
fn last_id(file: &mut File) -> Option<u64> {
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(256 * 1024);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    tail.split(|&b| b == b'\n')
        .rev()
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|value| value.get("id").and_then(serde_json::Value::as_u64))
}

struct Worker {
    file: Option<File>,
    first_id: u64,
    next_id: u64,
    keep_body: bool,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    written: u64,
    failed: u64,
    buf: Vec<u8>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut acks = Vec::new();
        let mut last_batch: Option<Instant> = None;
        crate::logging::hold_lines();
        while let Some(job) = rx.blocking_recv() {
            let mut next = Some(job);
            let mut close = None;
            let mut batch: u64 = 0;
            while let Some(job) = next.take() {
                match job {
                    Job::Exchange(mut finished, ack) => {
                        self.take(&mut finished);
                        acks.extend(ack);
                        batch += 1;
                    }
                    Job::Close(reply) => {
                        close = Some(reply);
                        break;
                    }
                }
                if batch < BATCH as u64 {
                    next = rx.try_recv().ok();
                }
            }
            self.write_batch(batch);
            crate::logging::flush_held();
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
            if let Some(reply) = close {
                self.sync();
                let _ = reply.send(Closed {
                    summary: lock(&self.live.summary).clone(),
                    written: self.written,
                    failed: self.failed,
                    ids: self.first_id..self.next_id,
                });
                return;
            }
            let now = Instant::now();
            if last_batch.is_some_and(|last| now.duration_since(last) < BUSY) {
                std::thread::sleep(LINGER);
            }
            last_batch = Some(now);
        }
        self.sync();
    }

    fn take(&mut self, finished: &mut Finished) {
        let record = Record::build(finished, self.next_id, self.keep_body);
        self.next_id += 1;
        crate::logging::exchange(&record);
        self.metrics.record(&record);
        if self.file.is_some() {
            let start = self.buf.len();
            match serde_json::to_writer(&mut self.buf, &record) {
                Ok(()) => self.buf.push(b'\n'),
                Err(err) => {
                    self.buf.truncate(start);
                    self.failed += 1;
                    tracing::error!(id = record.id, "cannot encode the exchange: {err}");
                }
            }
        }
        let mut ring = lock(&self.live.ring);
        lock(&self.live.summary).add_listing(&record, crate::report::LIVE_VIOLATIONS);
        let record = Arc::new(record);
        ring.push(record.clone());
        // No subscriber is no error.
        let _ = self.live.feed.send(record);
    }

    fn write_batch(&mut self, batch: u64) {
        let Some(file) = &mut self.file else {
            return;
        };
        if self.buf.is_empty() {
            return;
        }
        match file.write_all(&self.buf) {
            Ok(()) => self.written += batch,
            Err(err) => {
                self.failed += batch;
                tracing::error!(
                    "cannot append {batch} exchange(s) to the recording: {err}; they are lost from the file (their log lines remain)"
                );
            }
        }
        self.buf.clear();
    }

    fn sync(&mut self) {
        if let Some(file) = &self.file
            && let Err(err) = file.sync_all()
        {
            tracing::error!("cannot sync the recording to disk: {err}");
        }
        crate::logging::flush_held();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BodyEnd, Exchange};
    use bytes::Bytes;

    fn finished(n: u64) -> Finished {
        let url = format!("http://a.test/{n}").parse().expect("uri");
        let client = "127.0.0.1:1".parse().expect("addr");
        let mut exchange = Exchange::begin(http::Method::GET, url, client, http::Version::HTTP_11);
        exchange.status = Some(http::StatusCode::OK);
        Finished {
            exchange,
            end: BodyEnd {
                bytes: 0,
                is_complete: true,
            },
            elapsed: std::time::Duration::from_millis(1),
            body: Bytes::new(),
        }
    }

    /// The record of exchange `id` with `body` bytes of response body kept.
    fn record_with_body(id: u64, body: usize) -> Arc<Record> {
        let mut finished = finished(id);
        finished.body = Bytes::from(vec![b'x'; body]);
        finished.end.bytes = body as u64;
        Arc::new(Record::build(&mut finished, id, true))
    }

    #[test]
    fn the_ring_drops_the_oldest_once_its_records_pass_the_byte_budget() {
        let one = weight(&record_with_body(1, 10_000));
        assert!(one > 10_000, "a kept body counts in the weight");
        let mut ring = Ring::with_budget(3 * one + one / 2);
        for id in 1..=10 {
            ring.push(record_with_body(id, 10_000));
        }
        let ids: Vec<u64> = ring.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [8, 9, 10], "the newest that fit, oldest first");
        let held: usize = ring.records.iter().map(|r| weight(r)).sum();
        assert_eq!(ring.bytes, held);
        assert!(ring.bytes <= ring.budget);
    }

    #[test]
    fn a_record_heavier_than_the_whole_budget_is_still_kept_alone() {
        let mut ring = Ring::with_budget(1_000);
        ring.push(record_with_body(1, 10));
        ring.push(record_with_body(2, 5_000));
        let ids: Vec<u64> = ring.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [2]);
        assert_eq!(ring.bytes, weight(&ring.records[0]));
    }

    #[test]
    fn the_ring_keeps_at_most_ring_records_however_light() {
        let base = record_with_body(1, 0);
        let mut ring = Ring::default();
        for id in 1..=(RING as u64 + 5) {
            ring.push(Arc::new(Record {
                id,
                ..(*base).clone()
            }));
        }
        assert_eq!(ring.records.len(), RING);
        assert_eq!(ring.records.front().map(|r| r.id), Some(6));
        assert_eq!(ring.bytes, RING * weight(&base));
    }

    fn recording_to(path: &Path) -> Arc<Recorder> {
        let config = Config {
            path: Some(path.to_path_buf()),
            body_limit: 0,
        };
        Recorder::start(&config, Arc::default()).expect("starts")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_exchanges_wait_and_none_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("rec.jsonl");
        let recorder = recording_to(&path);
        // Three times the queue, as fast as possible: most find it full.
        let total = 3 * QUEUE as u64;
        for n in 0..total {
            recorder.submit(finished(n), None);
        }
        assert!(
            recorder.waited.load(Ordering::Relaxed) > 0,
            "the test must fill the queue to mean anything"
        );
        let closed = recorder.close().await.expect("closes");
        assert_eq!(closed.written, total);
        assert_eq!(closed.failed, 0);
        assert_eq!(closed.summary.exchanges, total);
        let text = std::fs::read_to_string(&path).expect("recording");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, total);
        let mut urls: Vec<u64> = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["url"].as_str().expect("url")["http://a.test/".len()..]
                    .parse()
                    .expect("n")
            })
            .collect();
        urls.sort_unstable();
        assert_eq!(urls, (0..total).collect::<Vec<_>>(), "each exchange once");
    }

    #[tokio::test]
    async fn ids_continue_after_an_existing_recording_and_a_cut_line_is_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.jsonl");
        std::fs::write(&path, "{\"id\": 41}\n{\"id\": 42}\n{\"id\": 4").expect("write");
        let recorder = recording_to(&path);
        recorder.submit(finished(1), None);
        let closed = recorder.close().await.expect("closes");
        assert_eq!(closed.ids, 43..44);
        let text = std::fs::read_to_string(&path).expect("recording");
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a line")).expect("json");
        assert_eq!(last["id"], 43);
        assert_eq!(
            text.lines().nth(2),
            Some("{\"id\": 4"),
            "the fragment stays apart"
        );
    }
}
