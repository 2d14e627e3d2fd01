//! What a trained version does to its inputs, said in model metadata so that a client knows
//! what to send: V2 `parameters` (model level, and per input for table columns, as MLServer's
//! metadata tensors carry them) and a `preprocessing` key next to `signature_def` in TF
//! Serving's metadata map. A client that scales images to [0, 1] for a model that divides by
//! 255 itself reads here why its answers are wrong.

use lathe_formats::{ColumnEncoding, Manifest, OnnxSpec, Preprocessing, SequentialSection};
use serde_json::{json, Map, Value};

/// Model-level facts: `preprocessing` (`none`, `rescale` or `standardize`), a sentence
/// `preprocessing_description` saying what to send, `rescale_divisor` and `input_range` for
/// a rescaling model, `feature_names` of a table, `missing_values` and `task`, and the
/// regression `targets` (comma-separated). Values are strings, numbers or booleans, as V2
/// parameters must be.
pub fn model_parameters(section: &SequentialSection) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("preprocessing".into(), json!(kind(&section.preprocessing)));
    p.insert("preprocessing_description".into(), json!(description(section)));
    if let Preprocessing::Rescale { divisor } = section.preprocessing {
        p.insert("rescale_divisor".into(), json!(divisor));
        p.insert("input_range".into(), json!(format!("0-{divisor}")));
    }
    if !section.feature_names.is_empty() {
        p.insert("feature_names".into(), json!(section.feature_names.join(",")));
    }
    if !section.columns.is_empty() {
        p.insert("missing_values".into(), json!(missing_policy(&section.columns)));
    }
    let task = if section.targets.is_empty() { "classification" } else { "regression" };
    p.insert("task".into(), json!(task));
    if !section.targets.is_empty() {
        let names: Vec<&str> = section.targets.iter().map(|t| t.name.as_str()).collect();
        p.insert("targets".into(), json!(names.join(",")));
    }
    p
}

/// Model-level facts of an imported ONNX graph: Lathe applies no preprocessing (whatever
/// scaling the exporter put in the graph is all there is), the producer, the operator set and
/// whether requests share runs.
pub fn onnx_parameters(spec: &OnnxSpec) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("preprocessing".into(), json!("none"));
    let said = "Send values as the exported graph takes them: Lathe applies no preprocessing of its own; scaling \
        the graph does not contain is the client's to do, as in the framework it was trained in.";
    p.insert("preprocessing_description".into(), json!(said));
    p.insert("onnx_producer".into(), json!(spec.producer));
    p.insert("onnx_opset".into(), json!(spec.opset));
    p.insert("batching".into(), json!(spec.batching));
    p
}

/// The model-level parameters of any version: trained ones say their preprocessing, ONNX
/// ones that there is none; other kinds say nothing.
pub fn parameters_of(manifest: &Manifest) -> Map<String, Value> {
    match (manifest.sequential(), manifest.onnx()) {
        (Some(s), _) => model_parameters(s),
        (None, Some(o)) => onnx_parameters(o),
        (None, None) => Map::new(),
    }
}

/// Facts about the input that carries one raw table column: `column_kind` (`number` or
/// `category`), the `categories` a categorical column knows (comma-separated) and whether
/// others go to an `other` slot, and what a missing cell becomes (`missing`).
pub fn column_parameters(column: &ColumnEncoding) -> Map<String, Value> {
    let mut p = Map::new();
    match column {
        ColumnEncoding::Numeric { fill, .. } => {
            p.insert("column_kind".into(), json!("number"));
            let missing = fill.map_or("refused".to_string(), |f| format!("imputed with {f}"));
            p.insert("missing".into(), json!(missing));
        }
        ColumnEncoding::Categorical { categories, other, fill, .. } => {
            p.insert("column_kind".into(), json!("category"));
            p.insert("categories".into(), json!(categories.join(",")));
            p.insert("other_category".into(), json!(other));
            let missing = fill.as_ref().map_or("refused".to_string(), |f| format!("imputed with {f:?}"));
            p.insert("missing".into(), json!(missing));
        }
    }
    p
}

/// TF Serving's extra metadata entry: the model parameters plus `inputs`, the column
/// parameters by input name (empty for models without raw columns).
pub fn tf_serving_entry(section: &SequentialSection) -> Value {
    let mut entry = model_parameters(section);
    let inputs: Map<String, Value> =
        section.columns.iter().map(|c| (c.name().to_string(), Value::Object(column_parameters(c)))).collect();
    entry.insert("inputs".into(), Value::Object(inputs));
    Value::Object(entry)
}

fn kind(p: &Preprocessing) -> &'static str {
    match p {
        Preprocessing::None => "none",
        Preprocessing::Rescale { .. } => "rescale",
        Preprocessing::Standardize { .. } => "standardize",
    }
}

/// One paragraph: what values to send, and what the model does with them itself.
fn description(section: &SequentialSection) -> String {
    let scaling = match &section.preprocessing {
        Preprocessing::None => {
            "Send values as the model was trained on them: they are used exactly as sent.".to_string()
        }
        Preprocessing::Rescale { divisor } => format!(
            "Send raw values (0-{divisor}, e.g. 8-bit pixels when the divisor is 255): the model divides every \
             value by {divisor} itself. Values already scaled to [0, 1] give confident wrong answers."
        ),
        Preprocessing::Standardize { .. } => "Send raw values in the training data's units: the model standardises \
            each feature with the training split's mean and standard deviation itself. Values already \
            standardised give wrong answers."
            .to_string(),
    };
    if section.columns.is_empty() {
        return scaling;
    }
    format!(
        "{scaling} One input per raw table column, named after it: numbers as numbers, categories as text \
         (one-hot encoded by the model)."
    )
}

fn missing_policy(columns: &[ColumnEncoding]) -> &'static str {
    let imputed = |c: &ColumnEncoding| match c {
        ColumnEncoding::Numeric { fill, .. } => fill.is_some(),
        ColumnEncoding::Categorical { fill, .. } => fill.is_some(),
    };
    if columns.iter().all(imputed) {
        "imputed (numbers: the training mean; categories: the most frequent)"
    } else {
        "refused"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(preprocessing: Preprocessing, columns: Vec<ColumnEncoding>) -> SequentialSection {
        let manifest = json!({
            "spec": {}, "preprocessing": preprocessing, "class_names": ["a", "b"], "columns": columns,
        });
        serde_json::from_value(manifest).expect("section")
    }

    #[test]
    fn rescaling_model_asks_for_raw_values() {
        let p = model_parameters(&section(Preprocessing::Rescale { divisor: 255.0 }, vec![]));
        assert_eq!(p["preprocessing"], "rescale");
        assert_eq!(p["rescale_divisor"], 255.0);
        assert_eq!(p["input_range"], "0-255");
        let text = p["preprocessing_description"].as_str().unwrap();
        assert!(text.contains("divides every value by 255 itself"), "{text}");
        assert_eq!(p["task"], "classification");
    }

    #[test]
    fn table_columns_say_their_kind_categories_and_missing_cells() {
        let columns = vec![
            ColumnEncoding::Numeric { name: "age".into(), fill: Some(29.5) },
            ColumnEncoding::Categorical {
                name: "port".into(),
                categories: vec!["S".into(), "C".into()],
                other: true,
                fill: Some("S".into()),
            },
        ];
        let s = section(Preprocessing::fit_standardize(&[1.0, 0.0, 1.0, 3.0, 1.0, 0.0], 3), columns);
        let p = model_parameters(&s);
        assert_eq!(p["preprocessing"], "standardize");
        assert!(p["missing_values"].as_str().unwrap().starts_with("imputed"));
        let entry = tf_serving_entry(&s);
        assert_eq!(entry["inputs"]["age"]["missing"], "imputed with 29.5");
        assert_eq!(entry["inputs"]["port"]["categories"], "S,C");
        assert_eq!(entry["inputs"]["port"]["other_category"], true);
        assert_eq!(entry["inputs"]["port"]["missing"], "imputed with \"S\"");
    }
}
