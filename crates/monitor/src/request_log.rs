//! The sampled request/response log: JSON lines written by one thread behind a bounded queue.
//! Recording never waits: when the queue is full (a slow or stalled sink) or a write fails
//! (a full disk), the line is dropped and counted.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where lines go.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    /// Standard output.
    Stdout,
    /// A file, appended to, rotated as configured.
    File(PathBuf),
}

/// When a file sink starts a new file: the current one is renamed `{path}.1` (older ones
/// shift to `.2`, …, up to `keep`) and a new one opened.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rotation {
    /// When the file would grow past this many bytes.
    pub max_bytes: Option<u64>,
    /// When the file has been open this long.
    pub max_age: Option<Duration>,
    /// Rotated files kept (at least 1).
    pub keep: usize,
}

/// How the log is written.
#[derive(Debug, Clone)]
pub struct RequestLogConfig {
    /// Where.
    pub sink: Sink,
    /// Rotation of a file sink.
    pub rotation: Rotation,
    /// Lines waiting to be written at most; more are dropped.
    pub queue: usize,
}

/// How long the writer lets lines gather between batches.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// A line, or what makes it: formatting runs on the writer thread, off the request path.
type Line = Box<dyn FnOnce() -> String + Send>;

/// The running log.
pub struct RequestLog {
    sender: SyncSender<Line>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

impl RequestLog {
    /// Starts the writer thread. A file sink is opened by that thread, so that a sink that
    /// blocks on open (a FIFO without a reader) never holds up the server.
    ///
    /// # Errors
    /// When the file's folder does not exist.
    pub fn start(config: RequestLogConfig) -> std::io::Result<RequestLog> {
        if let Sink::File(path) = &config.sink {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("request log {}: folder {} does not exist", path.display(), dir.display()),
                ));
            }
        }
        let (sender, receiver) = sync_channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || write_lines(config, receiver, &thread_counters))?;
        Ok(RequestLog { sender, counters })
    }

    /// Queues one line (without its newline); `false` when it was dropped.
    pub fn record(&self, line: String) -> bool {
        self.record_with(move || line)
    }

    /// Queues the line `format` makes; it runs on the writer thread. `false` when dropped.
    pub fn record_with(&self, format: impl FnOnce() -> String + Send + 'static) -> bool {
        match self.sender.try_send(Box::new(format)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Lines dropped so far (queue full, or a failed write).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

/// The open destination with what rotation needs.
struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    bytes: u64,
    opened: Instant,
}

fn open(sink: &Sink) -> std::io::Result<Output> {
    let (inner, bytes): (Box<dyn Write + Send>, u64) = match sink {
        Sink::Stdout => (Box::new(std::io::stdout()), 0),
        Sink::File(path) => {
            let f: File = OpenOptions::new().create(true).append(true).open(path)?;
            let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
            (Box::new(f), bytes)
        }
    };
    Ok(Output { writer: BufWriter::new(inner), bytes, opened: Instant::now() })
}

fn write_lines(config: RequestLogConfig, receiver: Receiver<Line>, counters: &Counters) {
    let mut output = match open(&config.sink) {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the request log; lines are dropped");
            None
        }
    };
    let mut failing = false;
    while let Ok(line) = receiver.recv() {
        let mut batch = vec![line];
        batch.extend(receiver.try_iter());
        // Lines count as written once flushed; a failed write or flush drops them.
        let mut pending = 0u64;
        for make in batch {
            let line = make();
            if let (Sink::File(path), Some(o)) = (&config.sink, output.as_mut()) {
                if due(&config.rotation, o, line.len() as u64 + 1) {
                    settle(counters, &mut pending, flush(&mut output), &mut failing);
                    output = rotate(path, config.rotation.keep, output.take());
                }
            }
            if output.as_mut().is_some_and(|o| write_line(o, &line).is_ok()) {
                pending += 1;
            } else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                report_failure(&mut failing, false);
            }
        }
        settle(counters, &mut pending, flush(&mut output), &mut failing);
        // Let lines gather: a thread woken for every line costs the serving threads a
        // wake-up each (a system call and a context switch), more than the writing itself.
        std::thread::sleep(GATHER);
    }
    let _ = flush(&mut output);
}

fn flush(output: &mut Option<Output>) -> bool {
    output.as_mut().is_some_and(|o| o.writer.flush().is_ok())
}

/// Counts the `pending` lines as written or dropped.
fn settle(counters: &Counters, pending: &mut u64, flushed: bool, failing: &mut bool) {
    let counter = if flushed { &counters.written } else { &counters.dropped };
    counter.fetch_add(std::mem::take(pending), Ordering::Relaxed);
    report_failure(failing, flushed);
}

fn write_line(o: &mut Output, line: &str) -> std::io::Result<()> {
    o.writer.write_all(line.as_bytes())?;
    o.writer.write_all(b"\n")?;
    o.bytes += line.len() as u64 + 1;
    Ok(())
}

/// Logs the first failure of a run of failures, and the recovery.
fn report_failure(failing: &mut bool, ok: bool) {
    if !ok && !*failing {
        tracing::warn!("the request log cannot write; lines are dropped and counted");
    } else if ok && *failing {
        tracing::info!("the request log writes again");
    }
    *failing = !ok;
}

fn due(rotation: &Rotation, o: &Output, next: u64) -> bool {
    let by_size = rotation.max_bytes.is_some_and(|max| o.bytes > 0 && o.bytes + next > max);
    let by_age = rotation.max_age.is_some_and(|age| o.opened.elapsed() >= age);
    by_size || by_age
}

/// Renames `path` to `path.1` after shifting older files, and opens a new `path`.
fn rotate(path: &Path, keep: usize, current: Option<Output>) -> Option<Output> {
    drop(current);
    let numbered = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
    let keep = keep.max(1);
    let _ = std::fs::remove_file(numbered(keep));
    for i in (1..keep).rev() {
        let _ = std::fs::rename(numbered(i), numbered(i + 1));
    }
    if let Err(e) = std::fs::rename(path, numbered(1)) {
        tracing::warn!(error = %e, "rotating the request log");
    }
    open(&Sink::File(path.to_path_buf())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(log: &RequestLog, total: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.written() + log.dropped() < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let rotation = Rotation { max_bytes: Some(100), max_age: None, keep: 50 };
        let log = RequestLog::start(RequestLogConfig { sink: Sink::File(path.clone()), rotation, queue: 64 }).unwrap();
        for i in 0..20 {
            assert!(log.record(format!("{{\"n\":{i},\"pad\":\"0123456789\"}}")));
        }
        wait_for(&log, 20);
        drop(log);
        std::thread::sleep(Duration::from_millis(50));
        let mut lines = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(text.len() <= 100, "a file grew past the limit: {}", text.len());
            lines += text.lines().count();
        }
        assert_eq!(lines, 20);
        assert!(path.with_extension("jsonl.1").exists());
    }

    #[test]
    fn rotates_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let rotation = Rotation { max_bytes: None, max_age: Some(Duration::from_millis(100)), keep: 3 };
        let log = RequestLog::start(RequestLogConfig { sink: Sink::File(path.clone()), rotation, queue: 8 }).unwrap();
        log.record("{\"n\":1}".into());
        wait_for(&log, 1);
        std::thread::sleep(Duration::from_millis(150));
        log.record("{\"n\":2}".into());
        wait_for(&log, 2);
        let older = std::fs::read_to_string(path.with_extension("jsonl.1")).unwrap();
        assert_eq!(older, "{\"n\":1}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
    }

    #[test]
    fn a_full_disk_drops_and_counts() {
        let full = Path::new("/dev/full");
        assert!(full.exists(), "/dev/full is part of every Linux system");
        let config = RequestLogConfig { sink: Sink::File(full.into()), rotation: Rotation::default(), queue: 8 };
        let log = RequestLog::start(config).unwrap();
        for _ in 0..5 {
            log.record("{}".into());
        }
        wait_for(&log, 5);
        assert_eq!((log.written(), log.dropped()), (0, 5));
    }

    #[test]
    fn a_missing_folder_is_refused_at_start() {
        let config = RequestLogConfig {
            sink: Sink::File("/nonexistent/dir/log.jsonl".into()),
            rotation: Rotation::default(),
            queue: 8,
        };
        let err = RequestLog::start(config).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/dir does not exist"), "{err}");
    }
}
