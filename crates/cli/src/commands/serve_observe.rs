//! The monitoring flags of `lathe serve`: explanation threads, drift, the request log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lathe_monitor::drift::DriftConfig;
use lathe_monitor::{RequestLog, RequestLogConfig, Rotation, Sink};
use lathe_server::observe::{Observability, ObserveConfig, RequestLogSettings};

/// Monitoring flags.
#[derive(Args, Debug, Clone)]
pub struct ObserveArgs {
    /// Threads computing explanations (`:explain`, `/explain`) and `/debug` inspections.
    #[arg(long, env = "LATHE_EXPLAIN_THREADS", default_value_t = 1, help_heading = "Monitoring")]
    pub explain_threads: usize,
    /// Explanations waiting for a thread at most; more are answered 429.
    #[arg(long, env = "LATHE_EXPLAIN_QUEUE", default_value_t = 8, help_heading = "Monitoring")]
    pub explain_queue: usize,
    /// Live rows each version keeps to measure drift against its training statistics (0: drift
    /// is not monitored).
    #[arg(long, env = "LATHE_DRIFT_WINDOW", default_value_t = 1000, help_heading = "Monitoring")]
    pub drift_window: usize,
    /// Drift alert when the mean PSI of the features (or the outputs' PSI) exceeds this.
    #[arg(long, env = "LATHE_DRIFT_PSI_THRESHOLD", default_value_t = 0.2, help_heading = "Monitoring")]
    pub drift_psi_threshold: f64,
    /// Rows the window must hold before the drift alert can be raised.
    #[arg(long, env = "LATHE_DRIFT_MIN_ROWS", default_value_t = 100, help_heading = "Monitoring")]
    pub drift_min_rows: usize,
    /// Seconds between drift measurements for the metrics and the alert's log line.
    #[arg(long, env = "LATHE_DRIFT_INTERVAL_SECS", default_value_t = 10, help_heading = "Monitoring")]
    pub drift_interval_secs: u64,
    /// Write sampled requests and responses as JSON lines to this file (`-`: standard output).
    /// `lathe replay FILE --server URL` sends such a log back.
    #[arg(long, env = "LATHE_REQUEST_LOG", help_heading = "Monitoring")]
    pub request_log: Option<String>,
    /// Share of each model's requests logged, 0 to 1.
    #[arg(long, env = "LATHE_REQUEST_LOG_SAMPLE", default_value_t = 0.1, help_heading = "Monitoring")]
    pub request_log_sample: f64,
    /// Per-model shares, `NAME=SHARE` (comma-separated or repeated), e.g. `mnist=1,fraud=0.01`.
    #[arg(long, env = "LATHE_REQUEST_LOG_MODEL", value_delimiter = ',', help_heading = "Monitoring")]
    pub request_log_model: Vec<String>,
    /// Inputs whose values are logged as "[redacted]" (and top-level keys such as `messages`).
    #[arg(long, env = "LATHE_REQUEST_LOG_REDACT", value_delimiter = ',', help_heading = "Monitoring")]
    pub request_log_redact: Vec<String>,
    /// Start a new log file when it would grow past this many bytes.
    #[arg(long, env = "LATHE_REQUEST_LOG_ROTATE_BYTES", help_heading = "Monitoring")]
    pub request_log_rotate_bytes: Option<u64>,
    /// Start a new log file after this many seconds.
    #[arg(long, env = "LATHE_REQUEST_LOG_ROTATE_SECS", help_heading = "Monitoring")]
    pub request_log_rotate_secs: Option<u64>,
    /// Rotated log files kept (`FILE.1` is the newest).
    #[arg(long, env = "LATHE_REQUEST_LOG_KEEP", default_value_t = 5, help_heading = "Monitoring")]
    pub request_log_keep: usize,
    /// Log lines waiting to be written at most; more are dropped and counted
    /// (`lathe_request_log_dropped_total`), never waited for.
    #[arg(long, env = "LATHE_REQUEST_LOG_QUEUE", default_value_t = 4096, help_heading = "Monitoring")]
    pub request_log_queue: usize,
}

impl ObserveArgs {
    /// Starts the monitoring these flags describe.
    pub fn start(&self) -> Result<Arc<Observability>> {
        let config = ObserveConfig {
            explain_threads: self.explain_threads.max(1),
            explain_queue: self.explain_queue,
            window_rows: self.drift_window,
            drift_interval: Duration::from_secs(self.drift_interval_secs.max(1)),
            drift: DriftConfig { psi_threshold: self.drift_psi_threshold, min_rows: self.drift_min_rows },
        };
        Ok(Observability::start(config, self.request_log_settings()?))
    }

    fn request_log_settings(&self) -> Result<Option<RequestLogSettings>> {
        let Some(target) = &self.request_log else { return Ok(None) };
        let share = |s: f64, what: &str| -> Result<f64> {
            anyhow::ensure!((0.0..=1.0).contains(&s), "{what}: expected a share from 0 to 1, got {s}");
            Ok(s)
        };
        let sample = share(self.request_log_sample, "--request-log-sample")?;
        let mut per_model = HashMap::new();
        for entry in &self.request_log_model {
            let (name, value) = entry
                .split_once('=')
                .with_context(|| format!("--request-log-model: expected NAME=SHARE, got {entry:?}"))?;
            let value: f64 = value.parse().with_context(|| format!("--request-log-model {entry:?}: not a number"))?;
            per_model.insert(name.to_string(), share(value, "--request-log-model")?);
        }
        let sink = if target == "-" { Sink::Stdout } else { Sink::File(PathBuf::from(target)) };
        let rotation = Rotation {
            max_bytes: self.request_log_rotate_bytes,
            max_age: self.request_log_rotate_secs.map(Duration::from_secs),
            keep: self.request_log_keep.max(1),
        };
        let log = RequestLog::start(RequestLogConfig { sink, rotation, queue: self.request_log_queue.max(1) })
            .context("--request-log")?;
        Ok(Some(RequestLogSettings { log, sample, per_model, redact: self.request_log_redact.clone() }))
    }
}
