#![no_main]
//! Open Inference Protocol JSON requests (no binary part).
use libfuzzer_sys::fuzz_target;

#[path = "signatures.rs"]
mod signatures;

fuzz_target!(|data: &[u8]| {
    let _ = lathe_server::oip_codec::decode_request(data, None, &signatures::mnist());
    let _ = lathe_server::oip_codec::decode_request(data, None, &signatures::two_inputs());
});
