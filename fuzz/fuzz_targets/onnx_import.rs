#![no_main]
//! ONNX import: any bytes are read and checked; what passes is typed and optimized, then run
//! once on zeros. Every outcome must be a value, never a crash.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // lathe-onnx catches tract's panics and turns them into errors, as the server relies on;
    // libFuzzer's hook would abort on a caught panic, so only an uncaught one crashes here.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let dir = std::path::Path::new("/nonexistent-lathe-fuzz");
    if let Ok(checked) = lathe_onnx::graph::check_bytes(data, dir) {
        if let Ok(model) = lathe_onnx::OnnxModel::from_checked(&checked, dir) {
            let _ = model.run_warm_up();
        }
    }
});
