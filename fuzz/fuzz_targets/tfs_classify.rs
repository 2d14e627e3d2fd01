#![no_main]
//! TF Serving `:classify` bodies (tf.Example-style features).
use libfuzzer_sys::fuzz_target;

#[path = "signatures.rs"]
mod signatures;

fuzz_target!(|data: &[u8]| {
    let features = ["f1".to_string(), "f2".to_string()];
    let _ = lathe_server::tfs_codec::decode_classify(data, &signatures::mnist(), &[]);
    let _ = lathe_server::tfs_codec::decode_classify(data, &signatures::mnist(), &features);
});
