//! Stop strings in generated text, also when a stop string is split across tokens: text that
//! could still begin a stop string is held back until the next tokens decide.

use crate::sampling::SamplingError;

/// Most stop strings per request (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;

/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 512;

/// What a piece of generated text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Text safe to send: it neither contains nor may begin a stop string.
    pub text: String,
    /// Whether a stop string was reached (generation ends; the stop string is not sent).
    pub stopped: bool,
}

/// Watches generated text for stop strings.
#[derive(Debug, Clone)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

impl StopStrings {
    /// Watches for `stops` (at most [`MAX_STOP_STRINGS`], none empty).
    pub fn new(stops: Vec<String>) -> Result<StopStrings, SamplingError> {
        let bad = stops.len() > MAX_STOP_STRINGS || stops.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_BYTES);
        if bad {
            let message =
                format!("expected at most {MAX_STOP_STRINGS} non-empty strings of at most {MAX_STOP_BYTES} bytes");
            return Err(SamplingError { field: "stop", message });
        }
        Ok(StopStrings { stops, held: String::new() })
    }

    /// Adds newly decoded text; returns what can be sent now and whether a stop was reached.
    pub fn push(&mut self, text: &str) -> Checked {
        self.held.push_str(text);
        let first_stop = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first_stop {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Checked { text, stopped: true };
        }
        let keep = self.stops.iter().map(|s| overlap(&self.held, s)).max().unwrap_or(0);
        let send = self.held.len() - keep;
        let text = self.held[..send].to_string();
        self.held.drain(..send);
        Checked { text, stopped: false }
    }

    /// The held-back text at the end of generation (no stop string came).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Bytes at the end of `text` that are a proper prefix of `stop`.
fn overlap(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopStrings::new(stops.iter().map(|s| s.to_string()).collect()).unwrap();
        let mut out = String::new();
        for p in pieces {
            let c = s.push(p);
            out.push_str(&c.text);
            if c.stopped {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn stops_split_across_tokens_are_found_and_not_sent() {
        assert_eq!(run(&["END"], &["Hello wor", "ld E", "N", "D more"]), ("Hello world ".into(), true));
        assert_eq!(run(&["\n\n", "User:"], &["a\n", "\nb"]), ("a".into(), true));
        assert_eq!(run(&["END"], &["EN", "ough"]), ("ENough".into(), false));
        assert_eq!(run(&["ß!"], &["straß", "e"]), ("straße".into(), false));
    }

    #[test]
    fn held_text_is_sent_as_soon_as_it_cannot_start_a_stop() {
        let mut s = StopStrings::new(vec!["END".into()]).unwrap();
        assert_eq!(s.push("abc E").text, "abc ");
        assert_eq!(s.push("x").text, "Ex");
    }

    #[test]
    fn too_many_or_empty_stops_are_refused() {
        assert_eq!(StopStrings::new(vec!["a".into(); 5]).unwrap_err().field, "stop");
        assert!(StopStrings::new(vec![String::new()]).is_err());
    }
}
