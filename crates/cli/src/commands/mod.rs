//! One module per subcommand.

pub mod bench;
mod bench_embed;
mod bench_generate;
mod bench_generate_http;
mod bench_monitoring;
mod bench_onnx;
mod bench_serve;
pub mod chat;
pub mod datasets;
pub mod eval;
pub mod explain;
mod explain_overlay;
pub mod generate;
pub mod import;
pub mod jobs;
pub mod keys;
mod llm;
pub mod models;
pub mod predict;
pub mod quickstart;
pub mod replay;
pub mod serve;
mod serve_observe;
mod serve_sync;
pub mod traffic;
pub mod train;
pub mod worker;
