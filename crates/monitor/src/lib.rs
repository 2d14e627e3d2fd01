//! Monitoring of served versions, with no I/O on the request path:
//! - [`LiveWindow`]: a bounded sliding window of the features and outputs a version received;
//! - [`drift::measure`]: population stability index and Kolmogorov–Smirnov statistic per
//!   feature against the version's training statistics, a summary score and the alert;
//! - [`RequestLog`]: sampled requests and responses as JSON lines, written by a thread behind a
//!   bounded queue that drops (and counts) rather than blocks.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod drift;
mod request_log;
mod window;

pub use request_log::{RequestLog, RequestLogConfig, Rotation, Sink};
pub use window::{LiveWindow, WindowSnapshot};
