//! From token ids back to text: each token's bytes (byte-level BPE through GPT-2's
//! byte-to-character table, SentencePiece with `▁` as a space and `<0xXX>` byte tokens), and
//! a streaming detokenizer that never emits a character split across tokens.

use std::collections::HashMap;

/// GPT-2's table from the printable characters byte-level BPE uses back to bytes
/// (`bytes_to_unicode` in openai/gpt-2's `encoder.py`): printable bytes keep their code
/// point, the other 68 bytes in increasing order become U+0100, U+0101, ….
pub(super) fn gpt2_char_to_byte() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (b as char, b)
            } else {
                let c = char::from_u32(next).expect("U+0100 to U+0143 are characters");
                next += 1;
                (c, b)
            }
        })
        .collect()
}

/// The bytes of a SentencePiece byte token `<0xXX>`.
pub(super) fn spm_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// Turns a stream of token bytes into text, holding back an incomplete UTF-8 sequence until
/// the tokens that complete it arrive.
#[derive(Debug, Default)]
pub struct Detokenizer {
    pending: Vec<u8>,
}

impl Detokenizer {
    /// Adds one token's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Bytes that can never become valid: emit them replaced rather than stall.
            Err(_) => self.pending.len(),
        };
        let text = String::from_utf8_lossy(&self.pending[..complete]).into_owned();
        self.pending.drain(..complete);
        text
    }

    /// The rest at the end of the stream (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_gpt2s() {
        let table = gpt2_char_to_byte();
        assert_eq!(table.len(), 256);
        assert_eq!((table[&'Ġ'], table[&'Ċ'], table[&'!'], table[&'\u{100}']), (b' ', b'\n', b'!', 0));
    }

    #[test]
    fn characters_split_across_tokens_wait_for_their_last_byte() {
        let mut d = Detokenizer::default();
        let euro = "€".as_bytes();
        assert_eq!(d.push(b"a"), "a");
        assert_eq!(d.push(&euro[..1]), "");
        assert_eq!(d.push(&euro[1..]), "€");
        assert_eq!(d.push(&[0xF0, 0x9F]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
        assert_eq!(spm_byte("<0x0A>"), Some(10));
        assert_eq!(spm_byte("<0x0>"), None);
    }
}
