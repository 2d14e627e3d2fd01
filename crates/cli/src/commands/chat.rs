//! `lathe chat NAME [MESSAGE]`: with MESSAGE, one answer and exit (like `ollama run NAME
//! "…"`); without, an interactive conversation that streams answers, keeps the history within
//! the context (oldest turns dropped first), reuses the KV cache between turns, and stops the
//! current answer on Ctrl-C.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lathe_generation::{generate, Completion, LanguageModel, Message, Request, Session};
use lathe_types::ModelRef;

use super::generate::completion_json;
use super::llm::{self, SamplingArgs};
use crate::Cli;

/// Arguments of `chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The causal-lm version: NAME, NAME:VERSION or NAME@LABEL; it needs a chat template.
    pub model: ModelRef,
    /// Answer this message and exit; without it, read messages from the terminal.
    pub message: Option<String>,
    /// A system message before the conversation (the template's default when absent).
    #[arg(long, env = "LATHE_SYSTEM")]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs `lathe chat`.
pub fn run(cli: &Cli, args: &ChatArgs) -> Result<()> {
    llm::set_threads(args.sampling.threads)?;
    let model = llm::open(cli, &args.model)?;
    let mut messages: Vec<Message> = args.system.iter().map(|s| Message::new("system", s)).collect();
    let mut session = Session::new(&model);
    let never = AtomicBool::new(false);
    if let Some(message) = &args.message {
        messages.push(Message::new("user", message));
        let done = answer(&model, &mut session, &messages, &args.sampling, &never, !cli.json)?;
        if cli.json {
            println!("{}", completion_json(&model, &done));
        } else {
            println!();
        }
        return Ok(());
    }
    interactive(&model, &mut session, messages, &args.sampling)
}

/// Generates the assistant's answer to `messages`, streaming it to stdout when `stream`.
fn answer(
    model: &LanguageModel,
    session: &mut Session,
    messages: &[Message],
    sampling: &SamplingArgs,
    stop: &AtomicBool,
    stream: bool,
) -> Result<Completion> {
    let prompt = model.chat_prompt(messages)?;
    let mut req = Request::new(prompt, sampling.max_tokens);
    req.params.sampling = sampling.params(model);
    req.params.stop = sampling.stop.clone();
    let mut out = std::io::stdout();
    let done = generate(model, session, &req, &mut |text| {
        if stream {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        !stop.load(Ordering::Relaxed)
    })?;
    Ok(done)
}

/// Drops the oldest exchanges (after any system message) until the prompt leaves room for an
/// answer of `max_tokens` in the context; keeps at least the last message, and the history
/// still starts with a user turn (templates that check alternation need that).
fn fit_history(model: &LanguageModel, messages: &mut Vec<Message>, max_tokens: usize) -> Result<()> {
    let context = model.decoder.config().context_length;
    let first = usize::from(messages.first().is_some_and(|m| m.role == "system"));
    while messages.len() > first + 1 && model.chat_prompt(messages)?.len() + max_tokens.min(context / 2) > context {
        messages.remove(first);
        while messages.len() > first + 1 && messages[first].role != "user" {
            messages.remove(first);
        }
    }
    Ok(())
}

/// Reads one message: a line; `"""` opens and closes a multi-line message, a trailing `\`
/// continues on the next line. `None` at end of input.
fn read_message(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Result<Option<String>> {
    let Some(first) = lines.next().transpose()? else { return Ok(None) };
    if let Some(rest) = first.strip_prefix("\"\"\"") {
        let mut text = rest.to_string();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(end) = line.strip_suffix("\"\"\"") {
                text.push('\n');
                text.push_str(end);
                return Ok(Some(text.trim_start_matches('\n').to_string()));
            }
            text.push('\n');
            text.push_str(&line);
        }
        return Ok(Some(text));
    }
    let mut text = first;
    while text.ends_with('\\') {
        text.pop();
        match lines.next().transpose()? {
            Some(line) => {
                text.push('\n');
                text.push_str(&line);
            }
            None => break,
        }
    }
    Ok(Some(text))
}

fn interactive(
    model: &LanguageModel,
    session: &mut Session,
    mut messages: Vec<Message>,
    s: &SamplingArgs,
) -> Result<()> {
    let generating = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (generating, stop) = (generating.clone(), stop.clone());
        ctrlc::set_handler(move || {
            if generating.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
            } else {
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!(
            "Chatting with a {} model. Send /bye or Ctrl-D to leave, /clear to forget the history;",
            model.facts.architecture
        );
        eprintln!("Start and end a multi-line message with \"\"\", or end a line with \\ to continue it.");
        eprintln!("Ctrl-C stops an answer.");
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            eprint!(">>> ");
        }
        let Some(text) = read_message(&mut lines)? else { break };
        match text.trim() {
            "" => continue,
            "/bye" | "/exit" => break,
            "/clear" => {
                messages.retain(|m| m.role == "system");
                eprintln!("history cleared");
                continue;
            }
            _ => {}
        }
        messages.push(Message::new("user", &text));
        stop.store(false, Ordering::Relaxed);
        generating.store(true, Ordering::Relaxed);
        let done = fit_history(model, &mut messages, s.max_tokens)
            .and_then(|()| answer(model, session, &messages, s, &stop, true));
        generating.store(false, Ordering::Relaxed);
        match done {
            Ok(done) => {
                println!();
                messages.push(Message::new("assistant", &done.text));
            }
            Err(e) => {
                // The conversation goes on without the message that could not be answered.
                eprintln!("error: {e:#}");
                messages.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &str) -> Vec<String> {
        let mut lines = input.lines().map(|l| Ok(l.to_string()));
        std::iter::from_fn(|| read_message(&mut lines).unwrap()).collect()
    }

    #[test]
    fn messages_span_lines_with_triple_quotes_or_backslashes() {
        assert_eq!(read_all("hi\nthere"), vec!["hi", "there"]);
        assert_eq!(read_all("\"\"\"one\ntwo\nthree\"\"\"\nnext"), vec!["one\ntwo\nthree", "next"]);
        assert_eq!(read_all("\"\"\"\nfirst\nsecond\n\"\"\""), vec!["first\nsecond\n"]);
        assert_eq!(read_all("a \\\nb"), vec!["a \nb"]);
    }
}
