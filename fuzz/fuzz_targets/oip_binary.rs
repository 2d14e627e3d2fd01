#![no_main]
//! Open Inference Protocol requests with the binary tensor data extension: the first two
//! bytes choose the JSON header length (0 = raw body).
use libfuzzer_sys::fuzz_target;

#[path = "signatures.rs"]
mod signatures;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let header_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let body = &data[2..];
    let _ = lathe_server::oip_codec::decode_request(body, Some(header_len), &signatures::mnist());
    let _ = lathe_server::oip_codec::decode_request(body, Some(header_len), &signatures::two_inputs());
});
