"""onnxruntime's side of `lathe bench onnx`: the same graph, inputs and thread count.

Reads a JSON job on stdin: {"model": path, "threads": n, "seconds": s, "cases": [{"batch": b,
"inputs": [{"name", "dtype", "shape"}]}]}; prints one JSON line per case with the median
latency of a run in microseconds. Inputs are filled exactly as Lathe fills them.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
          "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}


def filled(spec):
    n = int(np.prod(spec["shape"]))
    if spec["dtype"] in ("FP32", "FP64", "FP16"):
        values = (np.arange(n) % 255).astype(np.float64) / 255.0
    else:
        values = np.zeros(n)
    return values.astype(DTYPES[spec["dtype"]]).reshape(spec["shape"])


def main():
    job = json.load(sys.stdin)
    options = ort.SessionOptions()
    options.intra_op_num_threads = job["threads"]
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(job["model"], options, providers=["CPUExecutionProvider"])
    for case in job["cases"]:
        feeds = {i["name"]: filled(i) for i in case["inputs"]}
        for _ in range(20):
            session.run(None, feeds)
        times = []
        end = time.perf_counter() + job["seconds"]
        while time.perf_counter() < end:
            t = time.perf_counter()
            session.run(None, feeds)
            times.append((time.perf_counter() - t) * 1e6)
        print(json.dumps({"batch": case["batch"], "p50_us": float(np.median(times)), "runs": len(times),
                          "onnxruntime": ort.__version__}), flush=True)


main()
