//! The request decoders on mutated and random input: errors, never panics (a deterministic
//! stand-in for the `cargo fuzz` targets in fuzz/, run on every test run).

use lathe_server::{content_encoding, oip_codec, tfs_codec};
use lathe_types::{DType, Signature, TensorSignature};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut v = seed.to_vec();
    const TOKENS: [&[u8]; 12] =
        [b"[", b"]", b"{", b"}", b",", b"\"", b"-1", b"1e309", b"null", b"\"b64\"", b"18446744073709551615", b":"];
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 if !v.is_empty() => {
                let end = (at + rng.below(8)).min(v.len());
                v.drain(at.min(v.len())..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 if at < v.len() => v[at] = rng.next() as u8,
            _ => v.insert(at, rng.next() as u8),
        }
    }
    v
}

#[test]
fn decoders_never_panic() {
    let sig = Signature {
        inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 2, 2] }],
        outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 3] }],
    };
    let seeds: [&[u8]; 5] = [
        concat!(
            r#"{"id":"a","inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"#,
            r#""outputs":[{"name":"probabilities","parameters":{"binary_data":true,"classification":2}}]}"#
        )
        .as_bytes(),
        br#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"UINT8","parameters":{"binary_data_size":4}}]}"#,
        br#"{"instances":[[[1,2],[3,4]]],"signature_name":"serving_default"}"#,
        br#"{"inputs":{"input":[[[1,2],[3,4]]]}}"#,
        br#"{"examples":[{"input":[[1,2],[3,4]]}],"context":{}}"#,
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let seed = seeds[i % seeds.len()];
        let body =
            if i % 10 == 0 { (0..rng.below(64)).map(|_| rng.next() as u8).collect() } else { mutate(seed, &mut rng) };
        let header = if i % 3 == 0 { Some(rng.below(body.len() + 4)) } else { None };
        let _ = oip_codec::decode_request(&body, header, &sig);
        let _ = tfs_codec::decode_predict(&body, &sig);
        let _ = tfs_codec::decode_classify(&body, &sig, &[]);
        let _ = tfs_codec::decode_classify(&body, &sig, &["f".to_string()]);
    }
}

#[test]
fn compressed_bodies_never_panic_and_never_expand_past_the_limit() {
    use std::io::Write;
    let seed = br#"{"instances":[[[1,2],[3,4]]]}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(seed).unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(seed).unwrap();
    let seeds = [gz.finish().unwrap(), zlib.finish().unwrap(), seed.to_vec()];
    let mut rng = XorShift(0x51_7cc1_b727_220a);
    for i in 0..5_000 {
        let body = bytes::Bytes::from(mutate(&seeds[i % seeds.len()], &mut rng));
        for coding in ["gzip", "deflate", "x-gzip, identity"] {
            if let Ok(decoded) = content_encoding::decode_body(coding, body.clone(), 4096) {
                assert!(decoded.len() <= 4096);
                let _ = tfs_codec::decode_predict(&decoded, &sig_2x2());
            }
        }
    }
}

fn sig_2x2() -> Signature {
    Signature {
        inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 2, 2] }],
        outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 3] }],
    }
}
