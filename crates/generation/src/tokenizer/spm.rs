//! SentencePiece vocabularies of GGUF files (`tokenizer.ggml.model = llama`), tokenized with
//! llama.cpp's algorithm (`llm_tokenizer_spm_session` in `src/llama-vocab.cpp`): spaces become
//! `▁`, the text starts as one symbol per character, and the adjacent pair whose
//! concatenation is a vocabulary entry with the highest score is merged until none is left
//! (ties: leftmost); symbols that are not entries become byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::TokenizerError;

/// A scored vocabulary.
pub(super) struct Spm {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    bytes: Vec<Option<u32>>,
    add_space_prefix: bool,
}

/// A candidate merge of the symbols `left` and `right` (indices into the symbol list).
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    /// Bytes of the merged text, to recognise candidates whose symbols changed since.
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// The greatest is popped first: the highest score, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

/// A run of the text: `start..start + len`, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// A vocabulary of `tokens` with their `scores` (indexed by id).
    pub fn new(tokens: &[String], scores: Vec<f32>, add_space_prefix: bool) -> Result<Spm, TokenizerError> {
        if scores.len() != tokens.len() {
            let message = format!("{} scores for {} tokens", scores.len(), tokens.len());
            return Err(TokenizerError::Invalid(message));
        }
        let ids: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bytes = (0..=255u8)
            .map(|b| ids.get(&format!("<0x{b:02X}>")).or_else(|| ids.get(&(b as char).to_string())).copied())
            .collect();
        Ok(Spm { ids, scores, bytes, add_space_prefix })
    }

    /// Appends the ids of one fragment of text (special tokens already split out);
    /// `after_special` when it starts the text or follows a special token, where a space is
    /// prefixed if the vocabulary asks for it.
    pub fn encode_fragment(&self, text: &str, after_special: bool, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let mut escaped = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && after_special {
            escaped.push('\u{2581}');
        }
        escaped.extend(text.chars().map(|c| if c == ' ' { '\u{2581}' } else { c }));
        let symbols = self.merge(&escaped);
        let mut at = (!symbols.is_empty()).then_some(0);
        while let Some(i) = at {
            let s = symbols[i];
            let piece = &escaped[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        let id = self.bytes[b as usize];
                        out.push(id.ok_or_else(|| TokenizerError::Invalid(format!("no token for byte {b:#04x}")))?);
                    }
                }
            }
            at = s.next;
        }
        Ok(())
    }

    /// Merges the characters of `text` by score; returns the symbol list (merged-away symbols
    /// have length 0 and are unlinked).
    fn merge(&self, text: &str) -> Vec<Symbol> {
        let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        let mut symbols: Vec<Symbol> = (0..n)
            .map(|i| Symbol {
                start: starts[i],
                len: starts.get(i + 1).copied().unwrap_or(text.len()) - starts[i],
                prev: i.checked_sub(1),
                next: (i + 1 < n).then_some(i + 1),
            })
            .collect();
        let mut queue = BinaryHeap::new();
        for i in 1..n {
            self.push_bigram(text, &symbols, i - 1, i, &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (left, right) = (symbols[b.left], symbols[b.right]);
            if left.len == 0 || right.len == 0 || left.len + right.len != b.len {
                continue;
            }
            symbols[b.left].len += right.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = right.next;
            if let Some(next) = right.next {
                symbols[next].prev = Some(b.left);
            }
            if let Some(prev) = symbols[b.left].prev {
                self.push_bigram(text, &symbols, prev, b.left, &mut queue);
            }
            if let Some(next) = symbols[b.left].next {
                self.push_bigram(text, &symbols, b.left, next, &mut queue);
            }
        }
        symbols
    }

    fn push_bigram(&self, text: &str, symbols: &[Symbol], left: usize, right: usize, queue: &mut BinaryHeap<Bigram>) {
        let (l, r) = (symbols[left], symbols[right]);
        let merged = &text[l.start..r.start + r.len];
        if let Some(&id) = self.ids.get(merged) {
            queue.push(Bigram { left, right, score: self.scores[id as usize], len: merged.len() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Spm {
        let tokens = ["<unk>", "▁", "a", "b", "ab", "▁ab", "<0x21>"].map(String::from);
        Spm::new(&tokens, vec![0.0, -1.0, -2.0, -2.0, -0.5, -0.1, 0.0], true).unwrap()
    }

    #[test]
    fn highest_scores_merge_first_and_unknown_bytes_fall_back() {
        let mut out = Vec::new();
        vocab().encode_fragment("ab!", true, &mut out).unwrap();
        assert_eq!(out, vec![5, 6], "▁ab then the byte token of !");
        out.clear();
        vocab().encode_fragment("ab", false, &mut out).unwrap();
        assert_eq!(out, vec![4]);
    }
}
