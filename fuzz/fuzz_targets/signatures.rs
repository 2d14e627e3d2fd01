// Signatures the decoders are fuzzed against: the MNIST model's, and a two-input one.
use lathe_types::{DType, Signature, TensorSignature};

#[allow(dead_code)]
pub fn mnist() -> Signature {
    Signature {
        inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 28, 28] }],
        outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 10] }],
    }
}

#[allow(dead_code)]
pub fn two_inputs() -> Signature {
    Signature {
        inputs: vec![
            TensorSignature { name: "a".into(), datatype: DType::I64, shape: vec![-1, 2] },
            TensorSignature { name: "b".into(), datatype: DType::Bytes, shape: vec![-1] },
        ],
        outputs: vec![TensorSignature { name: "y_bytes".into(), datatype: DType::Bytes, shape: vec![-1] }],
    }
}
