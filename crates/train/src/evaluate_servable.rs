//! Evaluating a classifier that Lathe did not train (an imported ONNX graph) through the
//! engine contract: raw samples in, class scores out, the same metrics as for trained models.

use lathe_engine::Servable;
use lathe_formats::Evaluation;
use lathe_types::{DType, Tensor, TensorData};

use crate::data::{encode_labels, Dataset};
use crate::error::{data_err, TrainError};
use crate::metrics::{evaluation_from_predictions, log_loss, roc_auc};

/// Samples per run.
const CHUNK: usize = 500;

/// Evaluates `model`, a classifier with one numeric input and a `[-1, classes]` scores output
/// (probabilities or logits), on the data's test samples (all samples when it has no test
/// split). Samples go in raw, shaped as the input; class `i` is `class_names()[i]`, or `i`
/// when the model names none. Loss: cross-entropy of the scores (softmax first when they are
/// not probabilities).
///
/// # Errors
/// A message naming the mismatch: the input's size or type, no scores output, a label that is
/// not one of the classes, or the model's own error.
pub fn evaluate_servable(model: &dyn Servable, data: Dataset) -> Result<Evaluation, TrainError> {
    let sig = model.signature();
    let [input] = sig.inputs.as_slice() else {
        return Err(data_err(format!("the model takes {} inputs; evaluation feeds one", sig.inputs.len())));
    };
    let dims: Vec<usize> = input.shape.iter().skip(1).map(|&d| d.max(1) as usize).collect();
    let width: usize = dims.iter().product();
    if input.shape.iter().skip(1).any(|&d| d < 0) || width != data.features() {
        return Err(data_err(format!(
            "samples have {} values ({:?}); the model's input {:?} has shape {:?}",
            data.features(),
            data.sample_shape,
            input.name,
            input.shape
        )));
    }
    let scores_at = sig
        .scores_output(None)
        .ok_or_else(|| data_err("the model has no [-1, classes] scores output; evaluation scores classifiers"))?;
    let classes = sig.outputs[scores_at].shape[1] as usize;
    let names: Vec<String> = match model.class_names() {
        [] => (0..classes).map(|i| i.to_string()).collect(),
        given => given.to_vec(),
    };
    let split = data.test.unwrap_or(data.train);
    let truth = encode_labels(&split.labels, &names)?;
    let mut predicted = Vec::with_capacity(truth.len());
    let (mut loss_sum, mut positive) = (0.0, Vec::new());
    for (rows, labels) in split.x.chunks(CHUNK * width).zip(truth.chunks(CHUNK)) {
        let n = labels.len();
        let mut shape = vec![n];
        shape.extend(&dims);
        let tensor = Tensor { name: input.name.clone(), shape, data: typed(rows, input.datatype)? };
        let outputs = model.infer(&[tensor]).map_err(|e| data_err(format!("the model failed: {}", e.message)))?;
        let scores = outputs[scores_at].data.to_f32().ok_or_else(|| data_err("the scores are not numbers"))?;
        for (row, &label) in scores.chunks_exact(classes).zip(labels) {
            let p = probabilities(row);
            predicted.push(argmax(&p) as u32);
            loss_sum -= (p[label as usize].max(1e-15) as f64).ln();
            if classes == 2 {
                positive.push(p[1] as f64);
            }
        }
    }
    let mut e = evaluation_from_predictions(&truth, &predicted, &names, loss_sum);
    if classes == 2 {
        e.roc_auc = roc_auc(&positive, &truth);
        e.log_loss = Some(log_loss(&positive, &truth));
    }
    Ok(e)
}

/// Raw values in the input's type.
fn typed(rows: &[f32], dtype: DType) -> Result<TensorData, TrainError> {
    Ok(match dtype {
        DType::F32 => TensorData::F32(rows.to_vec()),
        DType::F64 => TensorData::F64(rows.iter().map(|&x| x as f64).collect()),
        DType::F16 => TensorData::F16(rows.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect()),
        DType::U8 => TensorData::U8(rows.iter().map(|&x| x as u8).collect()),
        other => return Err(data_err(format!("evaluation feeds numbers; the model's input is {other}"))),
    })
}

/// Scores as probabilities: as they are when they already are, else their softmax.
fn probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|&p| (0.0..=1.0).contains(&p)) && (sum - 1.0).abs() < 1e-3 {
        return row.to_vec();
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|&x| (x - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.iter().map(|e| e / total).collect()
}

fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold(0, |best, (i, &x)| if x > p[best] { i } else { best })
}
