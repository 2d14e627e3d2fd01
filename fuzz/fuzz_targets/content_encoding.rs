#![no_main]
//! Compressed request bodies: every coding, then the TF Serving decoder on what comes out.
use libfuzzer_sys::fuzz_target;

#[path = "signatures.rs"]
mod signatures;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    for coding in ["gzip", "deflate", "gzip, deflate", "identity", "br"] {
        if let Ok(decoded) = lathe_server::content_encoding::decode_body(coding, body.clone(), 1 << 20) {
            let _ = lathe_server::tfs_codec::decode_predict(&decoded, &signatures::mnist());
        }
    }
});
