//! Batch formation: greedy while a worker is busy, within rows, token and request budgets.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use lathe_engine::Servable;
use lathe_runtime::stats::VersionStats;
use lathe_runtime::{BatchConfig, Batcher};
use lathe_types::{ApiError, DType, Signature, Tensor, TensorData, TensorSignature};

/// Each row's value is its token length; the first execution waits for a signal so that
/// later requests queue up behind it.
struct Recorder {
    sig: Signature,
    batches: Mutex<Vec<Vec<f32>>>,
    started: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Servable for Recorder {
    fn signature(&self) -> &Signature {
        &self.sig
    }
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        if let Some(tx) = self.started.lock().unwrap().take() {
            tx.send(()).unwrap();
            self.release.lock().unwrap().take().unwrap().recv().unwrap();
        }
        let TensorData::F32(v) = &inputs[0].data else { unreachable!() };
        self.batches.lock().unwrap().push(v.clone());
        Ok(vec![Tensor { name: "y".into(), shape: vec![v.len()], data: TensorData::F32(v.clone()) }])
    }
    fn platform(&self) -> &str {
        "test"
    }
    fn tokens_per_row(&self, inputs: &[Tensor]) -> Option<usize> {
        let TensorData::F32(v) = &inputs[0].data else { return None };
        v.iter().map(|x| *x as usize).max()
    }
}

fn request(lengths: &[f32]) -> Vec<Tensor> {
    vec![Tensor { name: "x".into(), shape: vec![lengths.len()], data: TensorData::F32(lengths.to_vec()) }]
}

fn run(config: BatchConfig, requests: &[&[f32]]) -> Vec<Vec<f32>> {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let model = Arc::new(Recorder {
        sig: Signature {
            inputs: vec![TensorSignature { name: "x".into(), datatype: DType::F32, shape: vec![-1] }],
            outputs: vec![TensorSignature { name: "y".into(), datatype: DType::F32, shape: vec![-1] }],
        },
        batches: Mutex::new(Vec::new()),
        started: Mutex::new(Some(started_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let batcher = Batcher::start(model.clone(), config, Arc::new(VersionStats::default()), "test");
    let blocker = batcher.submit(request(&[1.0]), 1).unwrap();
    started_rx.recv().unwrap();
    let waiting: Vec<_> = requests.iter().map(|r| batcher.submit(request(r), r.len()).unwrap()).collect();
    release_tx.send(()).unwrap();
    blocker.blocking_recv().unwrap().unwrap();
    for (rx, r) in waiting.into_iter().zip(requests) {
        let out = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(out[0].data, TensorData::F32(r.to_vec()), "each request gets its own rows back");
    }
    drop(batcher);
    let batches = model.batches.lock().unwrap().clone();
    batches[1..].to_vec()
}

#[test]
fn queued_requests_batch_within_the_token_budget() {
    let config = BatchConfig { max_batch_tokens: 100, ..BatchConfig::default() };
    // B: 2 rows × 20 = 40; B + C: 3 × 50 = 150 > 100, so C waits; B + D: 3 × 20 = 60 fits,
    // so the short D joins B (grouping by length) and C runs alone.
    let batches = run(config, &[&[20.0, 10.0], &[50.0], &[5.0]]);
    assert_eq!(batches, vec![vec![20.0, 10.0, 5.0], vec![50.0]]);
}

#[test]
fn without_limits_everything_queued_goes_together_and_request_caps_apply() {
    let all = run(BatchConfig { max_batch_tokens: 0, ..BatchConfig::default() }, &[&[20.0, 10.0], &[50.0], &[5.0]]);
    assert_eq!(all, vec![vec![20.0, 10.0, 50.0, 5.0]]);
    let capped = run(
        BatchConfig { max_batch_tokens: 0, max_batch_requests: 2, ..BatchConfig::default() },
        &[&[1.0], &[2.0], &[3.0]],
    );
    assert_eq!(capped, vec![vec![1.0, 2.0], vec![3.0]]);
    let rows = run(
        BatchConfig { max_batch_size: 2, max_batch_tokens: 0, ..BatchConfig::default() },
        &[&[1.0], &[2.0], &[3.0]],
    );
    assert_eq!(rows, vec![vec![1.0, 2.0], vec![3.0]]);
}
