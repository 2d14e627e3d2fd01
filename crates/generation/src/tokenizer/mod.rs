//! Tokenizers of GGUF vocabularies, following llama.cpp (`src/llama-vocab.cpp`): special
//! tokens are split out of the text first (longest first, plain substring search), then each
//! remaining fragment is tokenized on its own. Byte-level BPE fragments go through the
//! `tokenizers` crate configured as the file says (`bpe.rs`); SentencePiece fragments through
//! llama.cpp's score-driven merging (`spm.rs`). Hugging Face folders bring their own
//! `tokenizer.json`, run as is by the `tokenizers` crate (`hf.rs`), as transformers does.

mod bpe;
mod decode;
mod hf;
mod spm;

pub use decode::Detokenizer;

use std::collections::HashMap;

use thiserror::Error;

use crate::gguf::{GgufError, GgufFile, MetadataValue};

/// Why a vocabulary cannot be used.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// The file lacks a key or has one of the wrong type.
    #[error(transparent)]
    File(#[from] GgufError),
    /// A tokenizer model or pre-tokenizer Lathe does not implement.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// The vocabulary is inconsistent.
    #[error("invalid tokenizer: {0}")]
    Invalid(String),
    /// Tokenizing failed.
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

/// A vocabulary entry's type (`tokenizer.ggml.token_type`, llama.h's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// 0.
    Undefined,
    /// 1: an ordinary token.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: control tokens (`<|im_start|>`, BOS, EOS); split out only when parsing specials.
    Control,
    /// 4: user-defined tokens, always split out.
    UserDefined,
    /// 5.
    Unused,
    /// 6: a byte token (`<0x0A>`).
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> TokenType {
        match id {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// A piece of text to tokenize, or a special token found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Token(u32),
}

/// How fragments between special tokens are tokenized.
enum Model {
    /// Byte-level BPE (`gpt2`), with GPT-2's character-to-byte table for decoding.
    Bpe(Box<tokenizers::Tokenizer>, HashMap<char, u8>),
    /// SentencePiece (`llama`).
    Spm(spm::Spm),
    /// A Hugging Face `tokenizer.json`; with GPT-2's byte table when its decoder is
    /// byte-level, else SentencePiece-style pieces (`▁`, `<0x0A>`).
    Hf(Box<tokenizers::Tokenizer>, Option<HashMap<char, u8>>),
}

/// A vocabulary with its tokenizer.
pub struct TextTokenizer {
    model: Model,
    /// Token texts and types, by id (for decoding).
    tokens: Vec<String>,
    types: Vec<TokenType>,
    /// User-defined tokens, longest first: always split out.
    user_defined: Vec<(String, u32)>,
    /// Control, unknown and user-defined tokens, longest first.
    all_specials: Vec<(String, u32)>,
    /// The token put before a prompt, when the model wants one.
    bos: Option<u32>,
}

impl TextTokenizer {
    /// The tokenizer of a GGUF file's vocabulary (`tokenizer.ggml.*`).
    pub fn from_gguf(f: &GgufFile) -> Result<TextTokenizer, TokenizerError> {
        let tokens = strings(f, "tokenizer.ggml.tokens")?;
        let types: Vec<TokenType> = match f.get("tokenizer.ggml.token_type") {
            Some(_) => f.array("tokenizer.ggml.token_type")?.iter().map(|v| TokenType::from_id(integer(v))).collect(),
            None => vec![TokenType::Normal; tokens.len()],
        };
        let model = match f.string("tokenizer.ggml.model")? {
            "gpt2" => {
                let merges = strings(f, "tokenizer.ggml.merges")?;
                let pre = match f.get("tokenizer.ggml.pre") {
                    Some(_) => f.string("tokenizer.ggml.pre")?,
                    None => "default",
                };
                Model::Bpe(Box::new(bpe::tokenizer(&tokens, &merges, pre)?), decode::gpt2_char_to_byte())
            }
            "llama" => {
                let scores = f.array("tokenizer.ggml.scores")?.iter().map(float).collect();
                let add_space_prefix = f.bool_opt("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
                Model::Spm(spm::Spm::new(&tokens, scores, add_space_prefix)?)
            }
            other => {
                let message =
                    format!("tokenizer.ggml.model {other:?}; supported: gpt2 (byte-level BPE), llama (SentencePiece)");
                return Err(TokenizerError::Unsupported(message));
            }
        };
        // llama.cpp's defaults: SentencePiece and Llama 3's BPE add BOS unless the file says no.
        let llama3 = matches!(f.get("tokenizer.ggml.pre"), Some(MetadataValue::String(p)) if p.starts_with("llama"));
        let default_bos = matches!(model, Model::Spm(_)) || llama3;
        let add_bos = f.bool_opt("tokenizer.ggml.add_bos_token")?.unwrap_or(default_bos);
        let bos = match f.get("tokenizer.ggml.bos_token_id") {
            Some(v) if add_bos => Some(integer(v) as u32),
            _ => None,
        };
        Ok(TextTokenizer::assemble(model, tokens, types, bos))
    }

    fn assemble(model: Model, tokens: Vec<String>, types: Vec<TokenType>, bos: Option<u32>) -> TextTokenizer {
        let specials = |wanted: &[TokenType]| {
            let mut s: Vec<(String, u32)> = tokens
                .iter()
                .zip(&types)
                .enumerate()
                .filter(|(_, (_, ty))| wanted.contains(ty))
                .map(|(id, (t, _))| (t.clone(), id as u32))
                .collect();
            s.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
            s
        };
        TextTokenizer {
            user_defined: specials(&[TokenType::UserDefined]),
            all_specials: specials(&[TokenType::Control, TokenType::Unknown, TokenType::UserDefined]),
            model,
            tokens,
            types,
            bos,
        }
    }

    /// The token a GGUF vocabulary puts before a prompt (`tokenizer.ggml.add_bos_token`);
    /// `None` for `tokenizer.json`, whose post-processor and templates add it themselves.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The id of a token's text (`<|im_end|>`), if in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.tokens.iter().position(|t| t == text).map(|i| i as u32)
    }

    /// The text of token `id` as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The type of token `id`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// Token ids of a raw prompt: the model's BOS when it wants one, then `text` with
    /// special tokens parsed (llama.cpp's `common_tokenize(…, add_special, parse_special)`;
    /// for `tokenizer.json`, its post-processor, as transformers' `tokenizer(text)`).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        if let Model::Hf(t, _) = &self.model {
            return hf::encode(t, text, true);
        }
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(self.encode(text, true)?);
        Ok(ids)
    }

    /// Token ids of `text`, without BOS. With `parse_special`, control tokens written in the
    /// text (`<|im_start|>`) become their ids; user-defined tokens always do.
    /// A `tokenizer.json` always parses its added tokens, as transformers does.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        if let Model::Hf(t, _) = &self.model {
            return hf::encode(t, text, false);
        }
        let specials = if parse_special { &self.all_specials } else { &self.user_defined };
        let mut ids = Vec::new();
        let mut after_special = true;
        for piece in partition(text, specials) {
            match (piece, &self.model) {
                (Piece::Token(id), _) => {
                    ids.push(id);
                    after_special = true;
                }
                (Piece::Text(""), _) => {}
                (Piece::Text(t), Model::Bpe(bpe, _)) => {
                    let e = bpe.encode_fast(t, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
                    ids.extend_from_slice(e.get_ids());
                }
                (Piece::Text(t), Model::Spm(spm)) => {
                    spm.encode_fragment(t, after_special, &mut ids)?;
                    after_special = false;
                }
                (Piece::Text(_), Model::Hf(..)) => unreachable!("tokenizer.json encodes whole texts"),
            }
        }
        Ok(ids)
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The bytes token `id` stands for. Control and unknown tokens are empty unless
    /// `render_special`; user-defined tokens are their text; ids outside the vocabulary are
    /// empty.
    pub fn token_bytes(&self, id: u32, render_special: bool) -> Vec<u8> {
        let (Some(text), Some(ty)) = (self.tokens.get(id as usize), self.types.get(id as usize)) else {
            return Vec::new();
        };
        match (ty, &self.model) {
            (TokenType::Control | TokenType::Unknown, _) if !render_special => Vec::new(),
            (TokenType::Control | TokenType::Unknown | TokenType::UserDefined, _) => text.as_bytes().to_vec(),
            (TokenType::Byte, Model::Spm(_) | Model::Hf(_, None)) => {
                decode::spm_byte(text).map_or_else(Vec::new, |b| vec![b])
            }
            (_, Model::Spm(_) | Model::Hf(_, None)) => text.replace('\u{2581}', " ").into_bytes(),
            (_, Model::Bpe(_, char_to_byte) | Model::Hf(_, Some(char_to_byte))) => {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match char_to_byte.get(&c) {
                        Some(&b) => out.push(b),
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out
            }
        }
    }

    /// The text of `ids` (special tokens left out), any broken UTF-8 as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut d = Detokenizer::default();
        let mut text: String = ids.iter().map(|&id| d.push(&self.token_bytes(id, false))).collect();
        text.push_str(&d.finish());
        text
    }
}

/// Splits `text` at every occurrence of each special token (longest first, as llama.cpp's
/// `tokenizer_st_partition`).
fn partition<'a>(text: &'a str, specials: &[(String, u32)]) -> Vec<Piece<'a>> {
    let mut pieces = vec![Piece::Text(text)];
    for (special, id) in specials {
        if special.is_empty() || !pieces.iter().any(|p| matches!(p, Piece::Text(t) if t.contains(special.as_str()))) {
            continue;
        }
        let mut out = Vec::with_capacity(pieces.len() + 2);
        for piece in pieces {
            let Piece::Text(mut rest) = piece else {
                out.push(piece);
                continue;
            };
            while let Some(at) = rest.find(special.as_str()) {
                if at > 0 {
                    out.push(Piece::Text(&rest[..at]));
                }
                out.push(Piece::Token(*id));
                rest = &rest[at + special.len()..];
            }
            if !rest.is_empty() {
                out.push(Piece::Text(rest));
            }
        }
        pieces = out;
    }
    pieces
}

fn strings(f: &GgufFile, key: &str) -> Result<Vec<String>, TokenizerError> {
    f.array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            MetadataValue::String(s) => Ok(s.clone()),
            _ => Err(TokenizerError::Invalid(format!("{key}[{i}]: expected a string"))),
        })
        .collect()
}

fn float(v: &MetadataValue) -> f32 {
    match v {
        MetadataValue::F32(x) => *x,
        MetadataValue::F64(x) => *x as f32,
        _ => 0.0,
    }
}

fn integer(v: &MetadataValue) -> i64 {
    match v {
        MetadataValue::I32(x) => *x as i64,
        MetadataValue::U32(x) => *x as i64,
        MetadataValue::I64(x) => *x,
        MetadataValue::U8(x) => *x as i64,
        MetadataValue::I8(x) => *x as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_split_longest_first() {
        let specials = vec![("<|im_start|>".to_string(), 1), ("<|im".to_string(), 7)];
        let pieces = partition("a<|im_start|>b<|imc", &specials);
        assert_eq!(
            pieces,
            vec![Piece::Text("a"), Piece::Token(1), Piece::Text("b"), Piece::Token(7), Piece::Text("c")]
        );
        assert_eq!(partition("", &specials), vec![Piece::Text("")]);
    }
}
