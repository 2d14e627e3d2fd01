#![no_main]
//! ONNX import: any bytes are read and checked; what passes is typed and optimized, then run
//! once on zeros. Every outcome must be a value, never a crash.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new("/nonexistent-lathe-fuzz");
    if let Ok(checked) = lathe_onnx::graph::check_bytes(data, dir) {
        if let Ok(model) = lathe_onnx::OnnxModel::from_checked(&checked, dir) {
            let _ = model.run_warm_up();
        }
    }
});
