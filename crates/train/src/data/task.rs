//! Deciding the task from the label cells, and reading regression targets.

use lathe_formats::spec::{LossKind, Task};

use super::Samples;
use crate::error::{data_err, TrainError};

/// Most distinct integer labels a column may hold and still be read as classes.
pub const MAX_INTEGER_CLASSES: usize = 20;

/// The task chosen for a data set, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChoice {
    /// The task.
    pub task: Task,
    /// Why, in words (`column "y" holds 173 distinct numbers`).
    pub reason: String,
}

/// Decides the task from label cells (`width` columns named `names`): strings, booleans, or
/// integers with at most [`MAX_INTEGER_CLASSES`] distinct values mean classification; other
/// numbers mean regression. Several label columns are always regression targets.
pub fn infer_task(samples: &Samples, names: &[String]) -> TaskChoice {
    let column = names.first().map_or("label".to_string(), |n| format!("{n:?}"));
    if samples.width() > 1 {
        let reason = format!("{} label columns are regression targets", samples.width());
        return TaskChoice { task: Task::Regression, reason };
    }
    let mut distinct: Vec<&str> = samples.labels.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let numbers: Option<Vec<f64>> = distinct.iter().map(|c| c.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
    let k = distinct.len();
    match numbers {
        None => TaskChoice {
            task: Task::Classification,
            reason: format!("column {column} holds text ({k} distinct values)"),
        },
        Some(values) if values.iter().all(|v| v.fract() == 0.0) && k <= MAX_INTEGER_CLASSES => TaskChoice {
            task: Task::Classification,
            reason: format!("column {column} holds {k} distinct integers (at most {MAX_INTEGER_CLASSES})"),
        },
        Some(_) => TaskChoice { task: Task::Regression, reason: format!("column {column} holds {k} distinct numbers") },
    }
}

/// The task of a run: the spec's when it names one; else what the loss implies (a
/// cross-entropy trains classifiers, `huber` regressors); else classification for images;
/// else [`infer_task`] on the labels. The reason is given when the data decided.
pub fn choose_task(
    spec_task: Option<Task>,
    loss: Option<LossKind>,
    format: &str,
    samples: &Samples,
    names: &[String],
) -> (Task, Option<String>) {
    if let Some(task) = spec_task {
        return (task, None);
    }
    match loss {
        Some(LossKind::Huber) => return (Task::Regression, Some("compile.loss huber trains regressors".into())),
        Some(l) if !l.is_regression() => {
            return (Task::Classification, Some("compile.loss is a classification loss".into()))
        }
        _ => {}
    }
    if format == "idx" {
        return (Task::Classification, Some("IDX images are labelled with classes".into()));
    }
    let TaskChoice { task, reason } = infer_task(samples, names);
    (task, Some(reason))
}

/// Parses the label cells as regression targets (`n · width` values), naming the sample and
/// the column of a cell that is not a finite number.
pub fn parse_targets(samples: &Samples, names: &[String]) -> Result<Vec<f32>, TrainError> {
    let w = samples.width();
    samples
        .labels
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            cell.parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                let column = names.get(i % w).map_or("label".to_string(), |n| format!("{n:?}"));
                data_err(format!("sample {}: target column {column}: expected a number, got {cell:?}", i / w))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_column(cells: &[&str]) -> Samples {
        Samples::new(Vec::new(), cells.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn text_booleans_and_few_integers_are_classes_other_numbers_targets() {
        let names = vec!["y".to_string()];
        assert_eq!(infer_task(&one_column(&["cat", "dog"]), &names).task, Task::Classification);
        assert_eq!(infer_task(&one_column(&["true", "false"]), &names).task, Task::Classification);
        assert_eq!(infer_task(&one_column(&["0", "1", "2", "1"]), &names).task, Task::Classification);
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let choice = infer_task(&one_column(&many), &names);
        assert_eq!(
            choice,
            TaskChoice { task: Task::Regression, reason: "column \"y\" holds 21 distinct numbers".into() }
        );
        assert_eq!(infer_task(&one_column(&["0.5", "1"]), &names).task, Task::Regression);
    }

    #[test]
    fn targets_name_the_sample_and_column() {
        let s = Samples { x: Vec::new(), labels: vec!["1".into(), "2".into(), "3".into(), "x".into()], label_width: 2 };
        let e = parse_targets(&s, &["a".into(), "b".into()]).unwrap_err().to_string();
        assert_eq!(e, "sample 1: target column \"b\": expected a number, got \"x\"");
    }
}
