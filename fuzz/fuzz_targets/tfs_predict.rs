#![no_main]
//! TF Serving `:predict` bodies (row and columnar formats).
use libfuzzer_sys::fuzz_target;

#[path = "signatures.rs"]
mod signatures;

fuzz_target!(|data: &[u8]| {
    let _ = lathe_server::tfs_codec::decode_predict(data, &signatures::mnist());
    let _ = lathe_server::tfs_codec::decode_predict(data, &signatures::two_inputs());
});
