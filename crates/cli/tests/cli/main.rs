//! The `lathe` binary driven as users drive it: real files, real MNIST, real processes.

mod acceptance;
mod bad_input;
#[path = "../../../store/tests/support/cluster.rs"]
mod cluster;
mod common;
mod dashboard;
mod embeddings;
mod generation;
mod generation_serve;
mod insight;
mod interrupt;
mod lifecycle;
mod metadata;
mod object_store;
mod onnx;
mod remote;
#[path = "../../../registry/tests/support/s3.rs"]
mod s3;
mod scale_out;
mod serve;
mod tables;
mod tls;
mod workflow;
