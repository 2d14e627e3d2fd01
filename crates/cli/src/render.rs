//! Tables for people.

use lathe_formats::Evaluation;

/// A figure to four decimals, or `-` when there is none.
pub fn figure(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"))
}

/// Prints an evaluation: a regressor's figures per target, or a classifier's headline
/// figures, per-class table and confusion matrix.
pub fn print_evaluation(e: &Evaluation) {
    if !e.per_target.is_empty() {
        print_regression(e);
        return;
    }
    let binary = match (e.roc_auc, e.log_loss) {
        (None, None) => String::new(),
        (auc, log_loss) => format!("  ROC AUC {}  log loss {}", figure(auc), figure(log_loss)),
    };
    println!(
        "samples {}  loss {:.4}  accuracy {}  macro precision {}  recall {}  F1 {}{binary}",
        e.samples,
        e.loss,
        figure(e.accuracy),
        figure(e.macro_precision),
        figure(e.macro_recall),
        figure(e.macro_f1)
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

/// MAE, RMSE and R² overall and per target.
fn print_regression(e: &Evaluation) {
    println!(
        "samples {}  loss {:.4}  MAE {}  RMSE {}  R² {}",
        e.samples,
        e.loss,
        figure(e.mae),
        figure(e.rmse),
        figure(e.r2)
    );
    let width = e.per_target.iter().map(|t| t.target.len()).max().unwrap_or(6).max(6);
    println!();
    println!("{:>width$}  {:>12}  {:>12}  {:>8}", "target", "MAE", "RMSE", "R²");
    for t in &e.per_target {
        println!("{:>width$}  {:>12.4}  {:>12.4}  {:>8.4}", t.target, t.mae, t.rmse, t.r2);
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
