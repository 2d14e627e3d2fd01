//! Reading an ONNX file and checking it before anything runs: a `ModelProto` with a graph, the
//! default operator set in the range tract runs, only operators tract implements, external
//! data files that sit beside the file, and declared input types and ranks.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use lathe_types::DType;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::prelude::Framework;

use crate::error::OnnxError;

/// Versions of the default (`ai.onnx`) operator set tract 0.23 runs (its tested range).
pub const OPSETS: std::ops::RangeInclusive<i64> = 9..=18;

/// Operator domains tract implements: the default one and `ai.onnx.ml`.
const DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// One dimension of a declared input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named symbolic dimension (`dim_param`, e.g. `batch`).
    Symbol(String),
    /// Neither a size nor a usable name.
    Unknown,
}

/// An input of the graph as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub dims: Vec<Dim>,
}

/// A read and checked ONNX file.
pub struct CheckedGraph {
    /// The decoded model.
    pub proto: pb::ModelProto,
    /// Version of the default operator set.
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// Operator types, sorted, each once (`ai.onnx.ml.` prefixed for that domain).
    pub ops: Vec<String>,
    /// Inputs that are not initializers, in graph order.
    pub inputs: Vec<InputDecl>,
    /// Output names, in graph order.
    pub outputs: Vec<String>,
    /// External data files, relative to the file's folder.
    pub external: Vec<String>,
}

/// Reads `path` and checks everything that can be checked without building the graph.
///
/// # Errors
/// [`OnnxError::NotOnnx`] for bytes that are not a model, [`OnnxError::Unsupported`] naming
/// the operators, operator set or types tract does not run, [`OnnxError::Request`] for
/// external data outside the file's folder or missing.
pub fn read_checked(path: &Path) -> Result<CheckedGraph, OnnxError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| OnnxError::File { path: path.display().to_string(), message: e.to_string() })?;
    if !meta.is_file() {
        return Err(OnnxError::File { path: path.display().to_string(), message: "not a file".into() });
    }
    let bytes = std::fs::read(path)
        .map_err(|e| OnnxError::File { path: path.display().to_string(), message: e.to_string() })?;
    check_bytes(&bytes, path.parent().unwrap_or(Path::new(".")))
}

/// As [`read_checked`], on the bytes of a file whose external data would live in `dir`.
///
/// # Errors
/// As [`read_checked`].
pub fn check_bytes(bytes: &[u8], dir: &Path) -> Result<CheckedGraph, OnnxError> {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| OnnxError::NotOnnx(format!("{} (truncated or another format)", crate::error::chain(&e))))?;
    let graph = proto.graph.as_ref().ok_or_else(|| OnnxError::NotOnnx("the file has no graph".into()))?;
    if proto.ir_version == 0 || graph.node.is_empty() {
        return Err(OnnxError::NotOnnx("no IR version or no nodes: this is not an exported model".into()));
    }
    let opset = default_opset(&proto)?;
    let ops = check_ops(graph)?;
    let inputs = declared_inputs(graph)?;
    let outputs = declared_outputs(graph)?;
    let external = external_files(graph, dir)?;
    let producer = format!("{} {}", proto.producer_name, proto.producer_version).trim().to_string();
    Ok(CheckedGraph { proto, opset, producer, ops, inputs, outputs, external })
}

fn default_opset(proto: &pb::ModelProto) -> Result<i64, OnnxError> {
    let opset = proto
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| OnnxError::NotOnnx("no operator set for the default domain (opset_import)".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Unsupported(format!(
            "operator set {opset} of ai.onnx is outside what tract 0.23 runs ({} to {}); export again with \
             opset {}: torch.onnx.export(..., opset_version={}), tf2onnx --opset {}, skl2onnx target_opset={}",
            OPSETS.start(),
            OPSETS.end(),
            OPSETS.end(),
            OPSETS.end(),
            OPSETS.end(),
            OPSETS.end()
        )));
    }
    Ok(opset)
}

/// Every operator of the graph and its subgraphs, refusing those tract lacks (by name).
fn check_ops(graph: &pb::GraphProto) -> Result<Vec<String>, OnnxError> {
    let register = tract_onnx::onnx().op_register;
    let mut used = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut stack = vec![graph];
    while let Some(g) = stack.pop() {
        for node in &g.node {
            let known = DOMAINS.contains(&node.domain.as_str()) && register.0.contains_key(&node.op_type);
            let shown = if node.domain.is_empty() || node.domain == "ai.onnx" {
                node.op_type.clone()
            } else {
                format!("{}.{}", node.domain, node.op_type)
            };
            if known {
                used.insert(shown);
            } else {
                missing.insert(shown);
            }
            for a in &node.attribute {
                stack.extend(a.g.iter());
                stack.extend(a.graphs.iter());
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(String::as_str).collect();
        return Err(OnnxError::Unsupported(format!(
            "unsupported operator{}: {} (tract 0.23 implements the ai.onnx operators and, of ai.onnx.ml, \
             CategoryMapper, LinearClassifier, LinearRegressor, Normalizer and TreeEnsembleClassifier)",
            if list.len() > 1 { "s" } else { "" },
            list.join(", ")
        )));
    }
    Ok(used.into_iter().collect())
}

fn declared_inputs(graph: &pb::GraphProto) -> Result<Vec<InputDecl>, OnnxError> {
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut inputs = Vec::new();
    for input in graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())) {
        let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(OnnxError::Unsupported(format!("input {:?} is not a tensor", input.name)));
        };
        let dtype = dtype_of(t.elem_type)
            .ok_or_else(|| OnnxError::Unsupported(format!("input {:?}: {}", input.name, type_name(t.elem_type))))?;
        let shape = t.shape.as_ref().ok_or_else(|| {
            OnnxError::Unsupported(format!("input {:?} declares no shape; export it with one", input.name))
        })?;
        let dims = shape.dim.iter().map(|d| dim_of(d.value.as_ref())).collect();
        inputs.push(InputDecl { name: input.name.clone(), dtype, dims });
    }
    if inputs.is_empty() {
        return Err(OnnxError::Unsupported("the graph has no inputs".into()));
    }
    Ok(inputs)
}

/// Output names; each must be produced by a node, an initializer or an input.
fn declared_outputs(graph: &pb::GraphProto) -> Result<Vec<String>, OnnxError> {
    let produced = |name: &str| {
        graph.node.iter().any(|n| n.output.iter().any(|o| o == name))
            || graph.initializer.iter().any(|t| t.name == name)
            || graph.input.iter().any(|i| i.name == name)
    };
    if let Some(o) = graph.output.iter().find(|o| !produced(&o.name)) {
        return Err(OnnxError::NotOnnx(format!("graph output {:?} is produced by no node", o.name)));
    }
    if graph.output.is_empty() {
        return Err(OnnxError::NotOnnx("the graph has no outputs".into()));
    }
    Ok(graph.output.iter().map(|o| o.name.clone()).collect())
}

fn dim_of(v: Option<&DimValue>) -> Dim {
    match v {
        Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(*n),
        Some(DimValue::DimParam(p)) if !p.is_empty() && p != "?" && !p.starts_with("unk__") => Dim::Symbol(p.clone()),
        _ => Dim::Unknown,
    }
}

/// The Lathe type of an ONNX `TensorProto.DataType`; `None` for types Lathe does not carry
/// (strings, complex numbers, bfloat16, 8-bit floats).
pub fn dtype_of(elem_type: i32) -> Option<DType> {
    use pb::tensor_proto::DataType as T;
    Some(match T::try_from(elem_type).ok()? {
        T::Float => DType::F32,
        T::Double => DType::F64,
        T::Float16 => DType::F16,
        T::Int8 => DType::I8,
        T::Int16 => DType::I16,
        T::Int32 => DType::I32,
        T::Int64 => DType::I64,
        T::Uint8 => DType::U8,
        T::Uint16 => DType::U16,
        T::Uint32 => DType::U32,
        T::Uint64 => DType::U64,
        T::Bool => DType::Bool,
        _ => return None,
    })
}

fn type_name(elem_type: i32) -> String {
    let name = pb::tensor_proto::DataType::try_from(elem_type).map(|t| t.as_str_name()).unwrap_or("an unknown type");
    format!(
        "type {name} is not served (FP16, FP32, FP64, INT8 to INT64, UINT8 to UINT64 and BOOL are); \
         export the graph with a cast"
    )
}

/// External data files named by the initializers; each must be a relative path inside the
/// file's folder and exist.
fn external_files(graph: &pb::GraphProto, dir: &Path) -> Result<Vec<String>, OnnxError> {
    const EXTERNAL: i32 = pb::tensor_proto::DataLocation::External as i32;
    let mut files = BTreeSet::new();
    for t in graph.initializer.iter().filter(|t| t.data_location == Some(EXTERNAL)) {
        let location = t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str());
        let location = location.ok_or_else(|| {
            OnnxError::Request(format!(
                "initializer {:?} keeps its data outside the file but names no location",
                t.name
            ))
        })?;
        let inside = Path::new(location).components().all(|c| matches!(c, Component::Normal(_)));
        let reserved = [lathe_formats::ONNX_FILE, lathe_formats::MANIFEST_FILE].contains(&location);
        if !inside || reserved || location.is_empty() {
            return Err(OnnxError::Request(format!(
                "initializer {:?}: external data file {location:?} must be a relative path inside the model's folder",
                t.name
            )));
        }
        if !dir.join(location).is_file() {
            return Err(OnnxError::Request(format!(
                "initializer {:?}: external data file {} is missing",
                t.name,
                dir.join(location).display()
            )));
        }
        files.insert(location.to_string());
    }
    Ok(files.into_iter().collect())
}
