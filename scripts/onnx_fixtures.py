#!/usr/bin/env python3
"""Make the ONNX fixtures of lathe-onnx's tests, with reference outputs from onnxruntime.

Usage:
    pip install onnx==1.23.2 onnxruntime==1.32.0 scikit-learn==1.9.1 skl2onnx==1.20.0
    python3 scripts/onnx_fixtures.py [--out crates/onnx/tests/fixtures]

Writes, for each fixture, NAME.onnx and NAME.json: the cases the tests replay, each with its
input tensors and onnxruntime's outputs (V2 JSON tensors: name, datatype, shape, flat data),
and the relative tolerance to compare with (1e-5; 1e-4 for convolutions). Weights are seeded,
so a rerun writes the same files. The fixtures:

- mlp:       Gemm, Relu, Gemm, Softmax; input x FP32 [N, 8] -> probabilities [N, 3]
- cnn:       Conv, BatchNormalization, Relu, MaxPool, Conv, GlobalAveragePool, Flatten, Gemm;
             image FP32 [N, 1, 8, 8] -> logits [N, 5]
- multi_io:  inputs a FP32 [N, 4] and b FP32 [N, 2]; outputs sum [N, 2], sumsq [N, 1] and
             best INT64 [N] (ArgMax)
- int_bool:  ids INT64 [N, T] and mask BOOL [N, T] (T: a symbolic sequence length); Gather
             from an embedding table, masked mean -> pooled FP32 [N, 3], positive BOOL [N, 3],
             count INT64 [N, 1]
- dtypes:    FP64, FP16, INT8, UINT8 and INT32 inputs cast and summed -> total FP64 [N, 2]
- fixed:     a fixed first dimension: x FP32 [1, 4] -> y [1, 2] (served one request at a time)
- sklearn_logreg: scikit-learn LogisticRegression (skl2onnx, zipmap=False): ai.onnx.ml
             LinearClassifier -> label INT64 [N], probabilities FP32 [N, 3]
- sklearn_forest: RandomForestClassifier: ai.onnx.ml TreeEnsembleClassifier
Bad input for import tests:
- sklearn_scaled: StandardScaler + LogisticRegression: ai.onnx.ml Scaler, which tract lacks
- custom_op: a node of op type Frobnicate in domain com.example
- old_opset: the mlp declared at opset 7
- dangling_output: an output no node produces
- escape: an mlp whose external data file is outside its folder (../outside.weights)
External data:
- external: an mlp whose weights are in external.weights beside it (copied into the version)
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
V2_TYPES = {
    "float32": "FP32", "float64": "FP64", "float16": "FP16", "int8": "INT8", "uint8": "UINT8",
    "int32": "INT32", "int64": "INT64", "bool": "BOOL",
}


def tensor_json(name, array):
    array = np.asarray(array)
    datatype = V2_TYPES[array.dtype.name]
    if datatype == "FP16":
        data = [int(b) for b in array.view(np.uint16).reshape(-1)]  # raw IEEE half bits
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def model(nodes, inputs, outputs, initializers, opset=OPSET, ml=False, name="lathe_fixture"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml else [])
    m = helper.make_model(graph, opset_imports=opsets, producer_name="lathe-fixtures")
    m.ir_version = IR_VERSION
    return m


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def write(out, name, m, feeds_list, rtol=1e-5, check=True):
    if check:
        onnx.checker.check_model(m)
    path = os.path.join(out, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    if feeds_list is not None:
        write_cases(out, name, path, feeds_list, rtol)


def write_cases(out, name, path, feeds_list, rtol):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    cases = []
    for feeds in feeds_list:
        results = session.run(None, feeds)
        cases.append({
            "inputs": [tensor_json(k, v) for k, v in feeds.items()],
            "outputs": [tensor_json(n, r) for n, r in zip(names, results)],
        })
    doc = {"fixture": name, "onnxruntime": ort.__version__, "rtol": rtol, "atol": 1e-6, "cases": cases}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def mlp(rng):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])
    inits = [init("w1", f32(rng, 8, 16, scale=0.5)), init("b1", f32(rng, 16, scale=0.1)),
             init("w2", f32(rng, 16, 3, scale=0.5)), init("b2", f32(rng, 3, scale=0.1))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    return model(nodes, [x], [y], inits), [{"x": f32(rng, n, 8)} for n in (1, 3)]


def cnn(rng):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])
    inits = [
        init("k1", f32(rng, 4, 1, 3, 3, scale=0.5)), init("c1", f32(rng, 4, scale=0.1)),
        init("gamma", (1 + 0.1 * rng.standard_normal(4)).astype(np.float32)),
        init("beta", f32(rng, 4, scale=0.1)), init("mean", f32(rng, 4, scale=0.1)),
        init("var", (1 + rng.random(4)).astype(np.float32)),
        init("k2", f32(rng, 6, 4, 3, 3, scale=0.3)), init("c2", f32(rng, 6, scale=0.1)),
        init("w", f32(rng, 6, 5, scale=0.5)), init("b", f32(rng, 5, scale=0.1)),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "k1", "c1"], ["conv1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool", "k2", "c2"], ["conv2"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["conv2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
    ]
    return model(nodes, [x], [y], inits), [{"image": f32(rng, n, 1, 8, 8)} for n in (1, 3)]


def multi_io(rng):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2])
    outs = [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("sumsq", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("best", TensorProto.INT64, ["N"])]
    inits = [init("w", f32(rng, 4, 2)), init("axes", np.array([1], dtype=np.int64))]
    nodes = [helper.make_node("MatMul", ["a", "w"], ["aw"]), helper.make_node("Add", ["aw", "b"], ["sum"]),
             helper.make_node("ReduceSumSquare", ["a", "axes"], ["sumsq"], keepdims=1),
             helper.make_node("ArgMax", ["sum"], ["best"], axis=1, keepdims=0)]
    m = model(nodes, [a, b], outs, inits, opset=18)
    return m, [{"a": f32(rng, n, 4), "b": f32(rng, n, 2)} for n in (1, 3)]


def int_bool(rng):
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"])
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", "T"])
    outs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("positive", TensorProto.BOOL, ["N", 3]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["N", 1])]
    inits = [init("table", f32(rng, 10, 3)), init("axis1", np.array([1], dtype=np.int64)),
             init("axis2", np.array([2], dtype=np.int64)), init("zero", np.array(0, dtype=np.float32)),
             init("one", np.array(1, dtype=np.float32))]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["n"], keepdims=1),
        helper.make_node("Max", ["n", "one"], ["denominator"]),
        helper.make_node("Div", ["total", "denominator"], ["pooled"]),
        helper.make_node("Greater", ["pooled", "zero"], ["positive"]),
        helper.make_node("Cast", ["n"], ["count"], to=TensorProto.INT64),
    ]
    cases = []
    for n, t in ((1, 4), (3, 4), (2, 7)):
        cases.append({"ids": rng.integers(0, 10, (n, t)).astype(np.int64), "mask": rng.random((n, t)) < 0.7})
    return model(nodes, [ids, mask], outs, inits), cases


def dtypes(rng):
    kinds = [("f64", TensorProto.DOUBLE, np.float64), ("f16", TensorProto.FLOAT16, np.float16),
             ("i8", TensorProto.INT8, np.int8), ("u8", TensorProto.UINT8, np.uint8),
             ("i32", TensorProto.INT32, np.int32)]
    inputs = [helper.make_tensor_value_info(n, t, ["N", 2]) for n, t, _ in kinds]
    out = helper.make_tensor_value_info("total", TensorProto.DOUBLE, ["N", 2])
    nodes = [helper.make_node("Cast", [n], [f"{n}_d"], to=TensorProto.DOUBLE) for n, _, _ in kinds]
    nodes.append(helper.make_node("Sum", [f"{n}_d" for n, _, _ in kinds], ["total"]))
    cases = []
    for n in (1, 3):
        feeds = {"f64": rng.standard_normal((n, 2)), "f16": rng.standard_normal((n, 2)).astype(np.float16),
                 "i8": rng.integers(-100, 100, (n, 2)).astype(np.int8),
                 "u8": rng.integers(0, 255, (n, 2)).astype(np.uint8),
                 "i32": rng.integers(-1000, 1000, (n, 2)).astype(np.int32)}
        cases.append(feeds)
    return model(nodes, inputs, [out], []), cases


def fixed(rng):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    return model(nodes, [x], [y], [init("w", f32(rng, 4, 2))]), [{"x": f32(rng, 1, 4)}]


def iris_like(rng):
    centres = np.array([[0, 0, 0, 0], [2, 1, -1, 0], [-1, 2, 1, 1]], dtype=np.float32)
    y = rng.integers(0, 3, 300)
    x = (centres[y] + rng.standard_normal((300, 4)) * 0.8).astype(np.float32)
    return x, y


def sklearn_models(rng, out):
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris_like(rng)
    sample = x[:5]
    options = {"zipmap": False}
    target = {"": OPSET, "ai.onnx.ml": 3}
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y)
    scaled = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    for name, est in (("sklearn_logreg", logreg), ("sklearn_forest", forest), ("sklearn_scaled", scaled)):
        m = to_onnx(est, sample, options={id(est.steps[-1][1] if hasattr(est, "steps") else est): options},
                    target_opset=target)
        m.ir_version = IR_VERSION
        cases = None if name == "sklearn_scaled" else [{"X": x[:1]}, {"X": x[10:13]}]
        write(out, name, m, cases)


def external_data(rng, out):
    """The mlp with its weights in a file beside it, and one whose data file is outside."""
    m, cases = mlp(rng)
    weights = os.path.join(out, "external.weights")
    if os.path.exists(weights):
        os.remove(weights)  # onnx appends to an existing data file
    onnx.save_model(m, os.path.join(out, "external.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="external.weights", size_threshold=0)
    write_cases(out, "external", os.path.join(out, "external.onnx"), cases, 1e-5)
    outside = onnx.load(os.path.join(out, "external.onnx"), load_external_data=False)
    for t in outside.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../outside.weights"
    with open(os.path.join(out, "escape.onnx"), "wb") as f:
        f.write(outside.SerializeToString())


def bad_models(rng, out):
    m, _ = mlp(rng)
    old = onnx.ModelProto()
    old.CopyFrom(m)
    old.opset_import[0].version = 7
    write(out, "old_opset", old, None, check=False)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    custom = model([node], [x], [y], [])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    write(out, "custom_op", custom, None, check=False)
    dangling = model([helper.make_node("Relu", ["x"], ["r"])], [x], [y], [])
    write(out, "dangling_output", dangling, None, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "..", "crates", "onnx", "tests", "fixtures"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(2026)
    for name, make in (("mlp", mlp), ("cnn", cnn), ("multi_io", multi_io), ("int_bool", int_bool),
                       ("dtypes", dtypes), ("fixed", fixed)):
        m, cases = make(rng)
        write(args.out, name, m, cases, rtol=1e-4 if name == "cnn" else 1e-5)
    sklearn_models(rng, args.out)
    bad_models(rng, args.out)
    external_data(np.random.default_rng(7), args.out)
    for f in sorted(os.listdir(args.out)):
        print(f"{f}: {os.path.getsize(os.path.join(args.out, f))} bytes")


if __name__ == "__main__":
    main()
