//! Tables for people.

use lathe_formats::Evaluation;

/// Prints an evaluation: headline figures, per-class table, confusion matrix.
pub fn print_evaluation(e: &Evaluation) {
    println!(
        "samples {}  loss {:.4}  accuracy {:.4}  macro precision {:.4}  recall {:.4}  F1 {:.4}",
        e.samples, e.loss, e.accuracy, e.macro_precision, e.macro_recall, e.macro_f1
    );
    let width = e.per_class.iter().map(|c| c.class.len()).max().unwrap_or(5).max(5);
    println!();
    println!("{:>width$}  {:>9}  {:>6}  {:>6}  {:>7}", "class", "precision", "recall", "f1", "support");
    for c in &e.per_class {
        println!("{:>width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}", c.class, c.precision, c.recall, c.f1, c.support);
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted class)");
    let cell = e.confusion.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1).max(width.min(8));
    let header: Vec<String> = e.per_class.iter().map(|c| format!("{:>cell$}", truncate(&c.class, cell))).collect();
    println!("{:>width$}  {}", "", header.join(" "));
    for (c, row) in e.per_class.iter().zip(&e.confusion) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>cell$}")).collect();
        println!("{:>width$}  {}", c.class, cells.join(" "));
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
