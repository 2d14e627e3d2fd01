//! One module per subcommand.

pub mod bench;
mod bench_embed;
mod bench_serve;
pub mod datasets;
pub mod eval;
pub mod import;
pub mod jobs;
pub mod keys;
pub mod models;
pub mod predict;
pub mod quickstart;
pub mod serve;
pub mod traffic;
pub mod train;
