//! Chat templates: the Jinja template a model ships with, rendered with minijinja the way
//! transformers renders it (`apply_chat_template`): `trim_blocks` and `lstrip_blocks` on, loop
//! controls, Python's string methods (`.strip()`, `.split()`, …), `raise_exception`,
//! `strftime_now`, and a `tojson` that writes like Python's `json.dumps` (no HTML escaping,
//! `", "` and `": "` separators).

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;
use thiserror::Error as ThisError;

pub use lathe_engine::generation::ChatMessage as Message;

/// A template that does not parse or does not render.
#[derive(Debug, ThisError)]
#[error("chat template: {0}")]
pub struct TemplateError(String);

impl From<Error> for TemplateError {
    fn from(e: Error) -> TemplateError {
        TemplateError(format!("{e:#}"))
    }
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts the template sees.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_string())?;
        Ok(ChatTemplate { env, bos_token: bos_token.into(), eos_token: eos_token.into() })
    }

    /// Renders `messages`; with `add_generation_prompt`, ends with the assistant's turn
    /// opening, ready for generation.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, TemplateError> {
        let template = self.env.get_template(NAME)?;
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        };
        Ok(template.render(context)?)
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// The current UTC time formatted with a C `strftime` format (the conversions templates use).
fn strftime_now(format: String) -> Result<String, Error> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('d') => format!("{:02}", now.day()),
            Some('m') => format!("{:02}", u8::from(now.month())),
            Some('Y') => now.year().to_string(),
            Some('y') => format!("{:02}", now.year() % 100),
            Some('B') => now.month().to_string(),
            Some('b') => now.month().to_string()[..3].to_string(),
            Some('A') => now.weekday().to_string(),
            Some('a') => now.weekday().to_string()[..3].to_string(),
            Some('H') => format!("{:02}", now.hour()),
            Some('M') => format!("{:02}", now.minute()),
            Some('S') => format!("{:02}", now.second()),
            Some('%') => "%".into(),
            other => {
                let message = format!("strftime_now: unsupported conversion %{}", other.unwrap_or(' '));
                return Err(Error::new(ErrorKind::InvalidOperation, message));
            }
        };
        out.push_str(&piece);
    }
    Ok(out)
}

/// `tojson` as Python's `json.dumps(value, ensure_ascii=False)`, with an optional `indent`.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let result = match indent {
        // With an indent Python separates with "," and ": ", as serde_json's pretty printer.
        Some(n) => {
            let spaces = " ".repeat(n);
            let pretty = serde_json::ser::PrettyFormatter::with_indent(spaces.as_bytes());
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, pretty))
        }
        None => value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PythonSeparators)),
    };
    result.map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    Ok(Value::from_safe_string(String::from_utf8(out).expect("serde_json writes UTF-8")))
}

/// Compact JSON with Python's default separators `", "` and `": "`.
struct PythonSeparators;

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.begin_array_value(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_transformers() {
        let source = "{%- for m in messages %}\n  {{- m.role | upper }}: {{ m.content.strip() }}\n{% endfor -%}\
            {% if add_generation_prompt %}{{ bos_token }}>{% endif %}";
        let t = ChatTemplate::new(source, "<s>", "</s>").unwrap();
        let out = t.render(&[Message::new("user", " hi "), Message::new("assistant", "yo")], true).unwrap();
        assert_eq!(out, "USER: hi\nASSISTANT: yo\n<s>>");
    }

    #[test]
    fn tojson_writes_like_python() {
        let t = ChatTemplate::new("{{ messages | tojson }}|{{ {'a': [1, 2]} | tojson(indent=2) }}", "", "").unwrap();
        let out = t.render(&[Message::new("user", "<b>&")], false).unwrap();
        assert_eq!(out, "[{\"role\": \"user\", \"content\": \"<b>&\"}]|{\n  \"a\": [\n    1,\n    2\n  ]\n}");
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
        assert!(ChatTemplate::new("{% if %}", "", "").is_err());
    }
}
