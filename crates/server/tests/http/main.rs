//! A real server on an ephemeral port, driven with a real HTTP client.

mod auth;
mod binary;
mod client_bodies;
mod common;
mod decoders;
mod errors;
mod explain;
mod monitoring;
mod promotion;
mod reload;
mod routes;
mod ui;
