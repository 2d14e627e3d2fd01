//! Importing a language model into the repository: open it completely (every tensor, the
//! vocabulary, the chat template) and run one token, so that nothing unusable is published;
//! then list the files to copy and write the `causal-lm` manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lathe_formats::{CausalLmSection, CausalLmSpec, Manifest, ModelSection, CAUSAL_LM_KIND};
use lathe_types::{DType, Signature, TensorSignature};

use crate::hf::HfError;
use crate::model::{LanguageModel, LoadError};

/// The file a GGUF import is stored as in its version folder.
pub const GGUF_FILE: &str = "model.gguf";

/// Files of a Hugging Face folder that a version keeps, besides the weight files
/// ([`crate::hf::weight_files`]).
const HF_FILES: [&str; 7] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
];

/// What to publish: files to copy (name in the version, source path) and the manifest.
pub struct Import {
    /// Version file name and the path to copy it from.
    pub files: Vec<(String, PathBuf)>,
    /// The manifest (files filled in by the repository).
    pub manifest: Manifest,
}

/// The signature of text generation: prompts in, generated texts out (strings).
pub fn causal_lm_signature() -> Signature {
    Signature {
        inputs: vec![TensorSignature { name: "prompt".into(), datatype: DType::Bytes, shape: vec![-1] }],
        outputs: vec![TensorSignature { name: "text".into(), datatype: DType::Bytes, shape: vec![-1] }],
    }
}

/// Whether a Hugging Face folder holds a causal language model (`config.json` names a
/// `*ForCausalLM` architecture).
pub fn is_causal_lm_folder(dir: &Path) -> bool {
    let Ok(config) = crate::hf::read_json(&dir.join("config.json")) else { return false };
    config["architectures"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| s.ends_with("ForCausalLM"))))
}

/// Checks `source` (a GGUF file, or a folder when `hf`) and prepares its import as `name`.
///
/// Errors: whatever [`LanguageModel::open`] finds (named file, tensor, key), or a GGUF path
/// that is a folder and the reverse.
pub fn prepare(source: &Path, hf: bool, name: &str, created_at: &str) -> Result<Import, LoadError> {
    let model = if hf {
        if !source.is_dir() {
            return Err(HfError::Missing {
                dir: source.into(),
                what: "folder (expected a Hugging Face model folder)".into(),
            }
            .into());
        }
        LanguageModel::open_hf(source)?
    } else {
        if source.is_dir() {
            let what = "GGUF file: this is a folder (import Hugging Face folders with `lathe import hf`)";
            return Err(HfError::Missing { dir: source.into(), what: what.into() }.into());
        }
        LanguageModel::open_gguf(source)?
    };
    let first = model.tokenizer.encode_prompt("Hello").ok().and_then(|ids| ids.first().copied()).unwrap_or(0);
    let logits = model.decoder.forward(first, &mut model.decoder.new_cache());
    if logits.iter().any(|v| !v.is_finite()) {
        let message = "the weights give non-finite logits (corrupt or mis-scaled tensors)".to_string();
        return Err(HfError::Invalid { path: source.into(), message }.into());
    }
    let files = if hf { hf_files(source)? } else { vec![(GGUF_FILE.to_string(), source.to_path_buf())] };
    let facts = &model.facts;
    let spec = CausalLmSpec {
        source: source.display().to_string(),
        format: facts.format.to_string(),
        architecture: facts.architecture.clone(),
        context_length: facts.context_length,
        vocab_size: facts.vocab_size,
        quantization: facts.quantization.clone(),
        parameters: facts.parameters,
        chat_template: facts.chat_template,
    };
    let manifest = Manifest {
        format: lathe_formats::MANIFEST_FORMAT,
        name: name.to_string(),
        created_at: created_at.to_string(),
        lathe_version: env!("CARGO_PKG_VERSION").to_string(),
        signature: causal_lm_signature(),
        model: ModelSection::CausalLm(CausalLmSection { spec }),
        files: BTreeMap::new(),
    };
    debug_assert_eq!(manifest.kind(), CAUSAL_LM_KIND);
    Ok(Import { files, manifest })
}

fn hf_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, HfError> {
    let mut files: Vec<(String, PathBuf)> =
        HF_FILES.iter().map(|name| (name.to_string(), dir.join(name))).filter(|(_, path)| path.is_file()).collect();
    for path in crate::hf::weight_files(dir)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        files.push((name, path));
    }
    files.sort();
    Ok(files)
}

/// Checks a version's copied files before it is published: the model opens from them and
/// is the model `spec` describes.
pub fn check_copy(dir: &Path, spec: &CausalLmSpec) -> Result<(), LoadError> {
    let copy = open_version(dir, spec)?;
    let facts = &copy.facts;
    let same = facts.parameters == spec.parameters && facts.quantization == spec.quantization;
    if !same || facts.vocab_size != spec.vocab_size || facts.context_length != spec.context_length {
        let message = "the copied files describe another model than the source (was it changed during the import?)";
        return Err(HfError::Invalid { path: dir.into(), message: message.into() }.into());
    }
    Ok(())
}

/// Opens a published `causal-lm` version from its folder.
pub fn open_version(dir: &Path, spec: &CausalLmSpec) -> Result<LanguageModel, LoadError> {
    match spec.format.as_str() {
        "hf" => LanguageModel::open_hf(dir),
        _ => LanguageModel::open_gguf(&dir.join(GGUF_FILE)),
    }
}
