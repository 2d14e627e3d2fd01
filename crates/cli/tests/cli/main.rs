//! The `lathe` binary driven as users drive it: real files, real MNIST, real processes.

mod acceptance;
mod bad_input;
mod common;
mod dashboard;
mod embeddings;
mod generation;
mod generation_serve;
mod insight;
mod interrupt;
mod lifecycle;
mod metadata;
mod onnx;
mod remote;
mod serve;
mod tables;
mod tls;
mod workflow;
