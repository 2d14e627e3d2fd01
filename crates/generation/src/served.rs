//! The served engine: a published `causal-lm` version as the engine contract's
//! [`TextGenerator`] (driven by the runtime's scheduler) inside a [`Servable`].

use std::path::Path;
use std::sync::Arc;

use lathe_engine::generation::{
    ChatMessage, GenerationParams, GeneratorFacts, KvBlocks, SamplingParams, SequenceChunk, TextGenerator,
    TokenSequence, TokenStep,
};
use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;
use lathe_types::{ApiError, Signature, Tensor};

use crate::decoder::OpTimes;
use crate::generate::{check_params, Decoding};
use crate::import::{causal_lm_signature, open_version};
use crate::model::{LanguageModel, PromptError};

/// A language model shared by the scheduler and the request handlers.
pub struct Generator {
    model: Arc<LanguageModel>,
}

impl Generator {
    /// Serves `model`.
    pub fn new(model: LanguageModel) -> Generator {
        Generator { model: Arc::new(model) }
    }

    /// Token ids the model can take: those with an embedding row and a vocabulary entry.
    fn vocab_limit(&self) -> usize {
        self.model.decoder.config().vocab_size.min(self.model.tokenizer.vocab_size())
    }
}

/// One request's decoding, holding the model for its vocabulary and end tokens.
struct ServedSequence {
    model: Arc<LanguageModel>,
    decoding: Decoding,
}

impl TokenSequence for ServedSequence {
    fn next(&mut self, logits: &mut [f32], prompt: &[u32], generated: &[u32]) -> TokenStep {
        self.decoding.step(&self.model, logits, prompt, generated)
    }

    fn finish(&mut self) -> String {
        self.decoding.finish()
    }
}

fn check_ids(ids: &[u32], vocab: usize) -> Result<(), ApiError> {
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(bad) => Err(ApiError::invalid(format!("token id {bad} is outside the vocabulary of {vocab} tokens"))),
        None => Ok(()),
    }
}

impl TextGenerator for Generator {
    fn facts(&self) -> GeneratorFacts {
        let cfg = self.model.decoder.config();
        GeneratorFacts {
            context_length: cfg.context_length,
            vocab_size: cfg.vocab_size,
            kv_bytes_per_token: cfg.kv_bytes_per_position(),
            chat_template: self.model.template.is_some(),
        }
    }

    fn tokenize(&self, text: &str, special: bool) -> Result<Vec<u32>, ApiError> {
        let t = &self.model.tokenizer;
        let ids = if special { t.encode_prompt(text) } else { t.encode(text, false) };
        let ids = ids.map_err(|e| ApiError::invalid(e.to_string()))?;
        check_ids(&ids, self.vocab_limit())?;
        Ok(ids)
    }

    fn detokenize(&self, ids: &[u32]) -> Result<String, ApiError> {
        check_ids(ids, self.vocab_limit())?;
        Ok(self.model.tokenizer.decode(ids))
    }

    fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(&self.model.tokenizer.token_bytes(id, false)).into_owned()
    }

    fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ApiError> {
        let ids = self.model.chat_prompt(messages).map_err(|e| match e {
            PromptError::NoTemplate => ApiError::invalid(format!("messages: {e}")),
            other => ApiError::invalid(format!("messages: {other}")),
        })?;
        check_ids(&ids, self.vocab_limit())?;
        Ok(ids)
    }

    fn sampling_defaults(&self) -> SamplingParams {
        let d = &self.model.defaults;
        let base = SamplingParams::default();
        SamplingParams {
            temperature: d.temperature.unwrap_or(base.temperature),
            top_p: d.top_p.unwrap_or(base.top_p),
            top_k: d.top_k.unwrap_or(base.top_k),
            min_p: d.min_p.unwrap_or(base.min_p),
            repetition_penalty: d.repetition_penalty.unwrap_or(base.repetition_penalty),
            ..base
        }
    }

    fn start(&self, params: &GenerationParams) -> Result<Box<dyn TokenSequence>, ApiError> {
        check_params(&self.model, params).map_err(|e| ApiError::invalid(e.to_string()))?;
        check_ids(&params.stop_token_ids, self.vocab_limit())
            .map_err(|e| ApiError::invalid(format!("stop_token_ids: {}", e.message)))?;
        let decoding = Decoding::new(params).map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(Box::new(ServedSequence { model: self.model.clone(), decoding }))
    }

    fn new_kv_blocks(&self, blocks: usize, block_size: usize) -> KvBlocks {
        self.model.decoder.new_kv_blocks(blocks, block_size)
    }

    fn forward(&self, chunks: &[SequenceChunk<'_>], kv: &mut KvBlocks) -> Vec<Vec<f32>> {
        self.model.decoder.run_chunks(chunks, kv, &mut OpTimes::default())
    }
}

/// A served `causal-lm` version: its [`Generator`] for the generation APIs. Tensor inference
/// (`infer`) is refused with a pointer to those APIs.
pub struct CausalLmModel {
    generator: Arc<Generator>,
    signature: Signature,
}

impl Servable for CausalLmModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn infer(&self, _inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        Err(ApiError::invalid(
            "this is a causal language model: use /v1/chat/completions, /v1/completions or /v2/models/{m}/generate",
        ))
    }

    fn platform(&self) -> &str {
        "lathe_generation"
    }

    fn text_generator(self: Arc<Self>) -> Option<Arc<dyn TextGenerator>> {
        Some(self.generator.clone())
    }
}

/// Loads published `causal-lm` versions (files checked against their sha256 first).
pub struct CausalLmLoader;

impl Loader for CausalLmLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        let spec = manifest
            .causal_lm()
            .ok_or_else(|| format!("model kind {:?} is not served by the generation engine", manifest.kind()))?;
        for (file, entry) in &manifest.files {
            let (sha, _) = lathe_formats::atomic::sha256_file(&dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
            if sha != entry.sha256 {
                return Err(format!("{file}: sha256 {sha} does not match the manifest ({})", entry.sha256));
            }
        }
        let model = open_version(dir, spec).map_err(|e| e.to_string())?;
        tracing::info!(dir = %dir.display(), "causal language model loaded");
        let generator = Arc::new(Generator::new(model));
        Ok(Arc::new(CausalLmModel { generator, signature: causal_lm_signature() }))
    }
}
