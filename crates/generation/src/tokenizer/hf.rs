//! Hugging Face `tokenizer.json` files, run by the `tokenizers` crate exactly as transformers'
//! fast tokenizers run them (normalizer, pre-tokenizer, model, post-processor, added tokens).

use std::path::Path;

use tokenizers::Tokenizer;

use super::{decode, Model, TextTokenizer, TokenType, TokenizerError};

/// Token ids of `text`; `add_special` runs the post-processor (BOS for Llama).
pub(super) fn encode(t: &Tokenizer, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
    let encoding = t.encode_fast(text, add_special).map_err(|e| TokenizerError::Encode(e.to_string()))?;
    Ok(encoding.get_ids().to_vec())
}

impl TextTokenizer {
    /// The tokenizer of a `tokenizer.json`. Added tokens marked special are control tokens,
    /// others user-defined; `<0x0A>`-style pieces of a byte-fallback vocabulary are bytes.
    pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer, TokenizerError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| TokenizerError::Invalid(format!("{}: {e}", path.display())))?;
        let tokenizer: Tokenizer =
            text.parse().map_err(|e| TokenizerError::Invalid(format!("{}: {e}", path.display())))?;
        let byte_level = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|j| j["decoder"].to_string().contains("ByteLevel"));
        let vocab = tokenizer.get_vocab(true);
        let size = vocab.values().max().map_or(0, |&m| m as usize + 1);
        let mut tokens = vec![String::new(); size];
        let mut types = vec![TokenType::Unused; size];
        for (token, id) in vocab {
            let byte = !byte_level && decode::spm_byte(&token).is_some();
            types[id as usize] = if byte { TokenType::Byte } else { TokenType::Normal };
            tokens[id as usize] = token;
        }
        for (id, added) in tokenizer.get_added_tokens_decoder() {
            if let Some(ty) = types.get_mut(id as usize) {
                *ty = if added.special { TokenType::Control } else { TokenType::UserDefined };
            }
        }
        let table = byte_level.then(decode::gpt2_char_to_byte);
        Ok(TextTokenizer::assemble(Model::Hf(Box::new(tokenizer), table), tokens, types, None))
    }
}
