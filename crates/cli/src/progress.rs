//! Progress of a training run: a bar per epoch for people, JSON lines for machines.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lathe_train::Event;

/// Renders fit events.
pub struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
    tty: bool,
}

impl Reporter {
    /// A reporter writing JSON lines to stdout (`json`) or bars to stderr.
    pub fn new(json: bool) -> Reporter {
        Reporter { json, bar: None, tty: std::io::stderr().is_terminal() }
    }

    /// Handles one event.
    pub fn event(&mut self, e: &Event) {
        if self.json {
            println!("{}", serde_json::to_string(e).expect("events serialise"));
            return;
        }
        match e {
            Event::EpochStart { epoch, epochs, samples } => {
                let bar = if self.tty { ProgressBar::new(*samples as u64) } else { ProgressBar::hidden() };
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "epoch {epoch}/{epochs} [{{bar:28}}] {{pos:>6}}/{{len}} {{per_sec:>14}} {{msg}} ETA {{eta}}"
                    ))
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                self.bar = Some(bar);
            }
            Event::Progress { seen, loss, accuracy, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*seen as u64);
                    let acc = accuracy.map_or_else(String::new, |a| format!(" acc {a:.4}"));
                    bar.set_message(format!("loss {loss:.4}{acc}"));
                }
            }
            Event::EpochEnd(r) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let val = match (r.val_loss, r.val_accuracy) {
                    (Some(l), Some(a)) => format!("  val_loss {l:.4}  val_acc {a:.4}"),
                    (Some(l), None) => format!("  val_loss {l:.4}"),
                    _ => String::new(),
                };
                let acc = r.accuracy.map_or_else(String::new, |a| format!("  acc {a:.4}"));
                eprintln!("epoch {:>3}  loss {:.4}{acc}{val}  lr {:.2e}  {:.2}s", r.epoch, r.loss, r.lr, r.seconds);
            }
            Event::Resumed { epochs_done } => eprintln!("resuming after epoch {epochs_done} from the checkpoint"),
            Event::EarlyStop { epoch, best_epoch } => {
                eprintln!("early stopping after epoch {epoch}; keeping the weights of epoch {best_epoch}")
            }
        }
    }
}
