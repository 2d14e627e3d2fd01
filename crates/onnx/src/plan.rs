//! From a checked graph to runnable tract plans: input facts with every unknown dimension
//! named (the first one `batch`), typing and decluttering, one optimized plan for every shape
//! and, per value of the symbolic dimensions other than the batch (a sequence length), an
//! optimized plan made for it, kept in a bounded least-recently-used cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::error::{chain, OnnxError};
use crate::graph::{CheckedGraph, Dim};

/// Symbol given to an unknown first dimension (skl2onnx writes the batch dimension so).
pub const BATCH_SYMBOL: &str = "batch";

/// Plans per shape kept at most, by default.
pub const DEFAULT_PLAN_CACHE: usize = 16;

type Plan = Arc<TypedRunnableModel>;

/// The graph's tract plans and what their inputs and outputs look like.
pub struct Plans {
    base: TypedModel,
    generic: Plan,
    /// Input dimensions as tract sees them (symbols where the graph has them).
    input_dims: Vec<Vec<TDim>>,
    /// The batch symbol, when every input and output starts with the same symbolic dimension.
    batch: Option<Symbol>,
    cache: Mutex<Lru>,
}

/// What the typed graph says about an output.
#[derive(Debug, Clone)]
pub struct OutputFact {
    /// tract's element type.
    pub datum_type: DatumType,
    /// Dimensions, `None` where symbolic.
    pub dims: Vec<Option<i64>>,
}

impl Plans {
    /// Types, declutters and optimizes the graph of `checked` for its declared shapes; `dir`
    /// is where its external data lives.
    ///
    /// # Errors
    /// [`OnnxError::Graph`] with tract's reason when the graph does not type or optimize.
    pub fn build(checked: &CheckedGraph, dir: &Path) -> Result<Plans, OnnxError> {
        // A graph tract cannot handle must be refused, not bring the process down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Plans::build_unguarded(checked, dir)))
            .unwrap_or_else(|p| Err(OnnxError::Graph(format!("tract failed on this graph: {}", panic_text(&p)))))
    }

    fn build_unguarded(checked: &CheckedGraph, dir: &Path) -> Result<Plans, OnnxError> {
        let graph_err = |e: TractError| OnnxError::Graph(chain(&e));
        let parsed = tract_onnx::onnx().parse(&checked.proto, dir.to_str()).map_err(graph_err)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(OnnxError::Graph(format!("inputs nothing produces: {:?}", parsed.unresolved_inputs)));
        }
        let mut model = parsed.model;
        name_unknown_dims(&mut model, checked).map_err(graph_err)?;
        let base = model.into_typed().and_then(|m| m.into_decluttered()).map_err(graph_err)?;
        let generic = base.clone().into_optimized().and_then(|m| m.into_runnable()).map_err(graph_err)?;
        let input_dims = (0..base.inputs.len())
            .map(|i| base.input_fact(i).map(|f| f.shape.iter().cloned().collect()))
            .collect::<TractResult<Vec<Vec<TDim>>>>()
            .map_err(graph_err)?;
        let batch = batch_symbol(&base, &input_dims);
        Ok(Plans { base, generic, input_dims, batch, cache: Mutex::new(Lru::new(DEFAULT_PLAN_CACHE)) })
    }

    /// Whether requests can be concatenated along the first dimension.
    pub fn batchable(&self) -> bool {
        self.batch.is_some()
    }

    /// Facts of the outputs, in graph order.
    pub fn output_facts(&self) -> Vec<OutputFact> {
        (0..self.base.outputs.len())
            .map(|i| {
                let f = self.base.output_fact(i).expect("output index in range");
                OutputFact { datum_type: f.datum_type, dims: f.shape.iter().map(|d| d.as_i64()).collect() }
            })
            .collect()
    }

    /// Runs the plan for these inputs' shapes.
    ///
    /// # Errors
    /// [`OnnxError::Run`] with tract's reason.
    pub fn run(&self, inputs: TVec<TValue>) -> Result<TVec<TValue>, OnnxError> {
        let plan = self.plan_for(&inputs);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(inputs)))
            .map_err(|p| OnnxError::Run(format!("tract failed on these inputs: {}", panic_text(&p))))?
            .map_err(|e| OnnxError::Run(chain(&e)))
    }

    /// Plans made for one shape and kept.
    pub fn cached_plans(&self) -> usize {
        self.cache.lock().expect("plan cache").entries.len()
    }

    /// The plan made for the values of the non-batch symbols of these inputs, made and kept
    /// on first use; the generic plan when there are none or making one fails.
    fn plan_for(&self, inputs: &[TValue]) -> Plan {
        let values = self.symbol_values(inputs);
        if values.is_empty() {
            return self.generic.clone();
        }
        let key: Vec<(String, i64)> = values.iter().map(|(s, v)| (s.to_string(), *v)).collect();
        if let Some(plan) = self.cache.lock().expect("plan cache").get(&key) {
            return plan;
        }
        let subs: HashMap<Symbol, TDim> = values.into_iter().map(|(s, v)| (s, TDim::Val(v))).collect();
        match self.base.set_symbols(&subs).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable()) {
            Ok(plan) => {
                self.cache.lock().expect("plan cache").insert(key, plan.clone());
                plan
            }
            Err(e) => {
                tracing::warn!("no plan for {key:?}, running the generic one: {e:#}");
                self.generic.clone()
            }
        }
    }

    /// Values of the symbolic input dimensions other than the batch one, sorted by name.
    fn symbol_values(&self, inputs: &[TValue]) -> Vec<(Symbol, i64)> {
        let mut values: Vec<(Symbol, i64)> = Vec::new();
        for (dims, input) in self.input_dims.iter().zip(inputs) {
            for (d, &size) in dims.iter().zip(input.shape()) {
                if let TDim::Sym(s) = d {
                    if Some(s) != self.batch.as_ref() && !values.iter().any(|(k, _)| k == s) {
                        values.push((s.clone(), size as i64));
                    }
                }
            }
        }
        values.sort_by_key(|(s, _)| s.to_string());
        values
    }
}

/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Gives every unknown input dimension a symbol: [`BATCH_SYMBOL`] (or the first input's
/// named first dimension) for the first axis, `{input}_{axis}` elsewhere.
fn name_unknown_dims(model: &mut InferenceModel, checked: &CheckedGraph) -> TractResult<()> {
    let batch_name = match checked.inputs.first().and_then(|i| i.dims.first()) {
        Some(Dim::Symbol(s)) => s.clone(),
        _ => BATCH_SYMBOL.to_string(),
    };
    for (i, decl) in checked.inputs.iter().enumerate() {
        let mut fact = model.input_fact(i)?.clone();
        for (axis, d) in decl.dims.iter().enumerate() {
            if *d == Dim::Unknown {
                let name = if axis == 0 { batch_name.clone() } else { symbol_name(&decl.name, axis) };
                fact.shape.set_dim(axis, model.symbols.sym(&name).into());
            }
        }
        model.set_input_fact(i, fact)?;
    }
    Ok(())
}

/// A symbol name made of the input's letters and digits and the axis.
fn symbol_name(input: &str, axis: usize) -> String {
    let clean: String = input.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{clean}_{axis}")
}

/// The symbol every input and output starts with, if there is one.
fn batch_symbol(model: &TypedModel, input_dims: &[Vec<TDim>]) -> Option<Symbol> {
    let Some(TDim::Sym(first)) = input_dims.first().and_then(|d| d.first()) else {
        return None;
    };
    let starts_with = |d: Option<&TDim>| matches!(d, Some(TDim::Sym(s)) if s == first);
    let inputs = input_dims.iter().all(|d| starts_with(d.first()));
    let outputs =
        (0..model.outputs.len()).all(|i| model.output_fact(i).is_ok_and(|f| starts_with(f.shape.iter().next())));
    (inputs && outputs).then(|| first.clone())
}

/// A small least-recently-used map from shape keys to plans.
struct Lru {
    capacity: usize,
    entries: Vec<(Vec<(String, i64)>, Plan)>,
}

impl Lru {
    fn new(capacity: usize) -> Lru {
        Lru { capacity, entries: Vec::new() }
    }

    fn get(&mut self, key: &[(String, i64)]) -> Option<Plan> {
        let i = self.entries.iter().position(|(k, _)| k.as_slice() == key)?;
        let entry = self.entries.remove(i);
        let plan = entry.1.clone();
        self.entries.push(entry);
        Some(plan)
    }

    fn insert(&mut self, key: Vec<(String, i64)>, plan: Plan) {
        self.entries.retain(|(k, _)| *k != key);
        if self.entries.len() >= self.capacity {
            self.entries.remove(0);
        }
        self.entries.push((key, plan));
    }
}
