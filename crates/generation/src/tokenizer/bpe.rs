//! Byte-level BPE vocabularies of GGUF files (`tokenizer.ggml.model = gpt2`) as a
//! `tokenizers` tokenizer: the vocabulary and merges from the file, the pre-tokenizer regexes
//! that `tokenizer.ggml.pre` names (llama.cpp's `llm_tokenizer_bpe`), GPT-2's byte-to-character
//! table.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use super::TokenizerError;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = concat!(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const QWEN2: &str = concat!(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// The regexes of a pre-tokenizer name, applied in order (each splits the pieces of the
/// previous one), and whether whole-word vocabulary entries skip the merges.
fn pre_tokenizer(pre: &str) -> Result<(Vec<&'static str>, bool), TokenizerError> {
    Ok(match pre {
        "gpt-2" | "gpt2" => (vec![GPT2], false),
        "smollm" => (vec![r"\p{N}", GPT2], false),
        "llama-bpe" | "llama3" | "llama-v3" => (vec![LLAMA3], true),
        "qwen2" => (vec![QWEN2], false),
        "default" => (vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"], false),
        other => {
            let known = "gpt-2, smollm, llama-bpe (llama3), qwen2, default";
            return Err(TokenizerError::Unsupported(format!("pre-tokenizer {other:?}; supported: {known}")));
        }
    })
}

/// Builds the tokenizer of a byte-level BPE vocabulary, for text without special tokens
/// (the caller splits those out first).
///
/// `tokens` are indexed by id; `merges` are `"left right"` strings whose rank is their index.
pub(super) fn tokenizer(tokens: &[String], merges: &[String], pre: &str) -> Result<Tokenizer, TokenizerError> {
    let (regexes, ignore_merges) = pre_tokenizer(pre)?;
    let vocab: tokenizers::models::bpe::Vocab =
        tokens.iter().enumerate().map(|(id, t)| (t.clone(), id as u32)).collect();
    let merges = merges.iter().map(|m| split_merge(m)).collect::<Result<Vec<_>, _>>()?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| TokenizerError::Invalid(format!("BPE vocabulary: {e}")))?;
    let mut splits = regexes
        .into_iter()
        .map(|r| {
            let split = Split::new(SplitPattern::Regex(r.into()), SplitDelimiterBehavior::Isolated, false);
            split.map(PreTokenizerWrapper::Split).map_err(|e| TokenizerError::Invalid(format!("regex {r}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    splits.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)));
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(splits)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// `"left right"` at the first space after position 0 (a merge may start with a space-like
/// character, never with a plain space).
fn split_merge(merge: &str) -> Result<(String, String), TokenizerError> {
    merge
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == ' ')
        .map(|(i, _)| (merge[..i].to_string(), merge[i + 1..].to_string()))
        .ok_or_else(|| TokenizerError::Invalid(format!("merge {merge:?} is not \"left right\"")))
}
