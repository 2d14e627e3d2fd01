#!/usr/bin/env python3
"""Train the reference MNIST MLP with Keras, export it to ONNX as the README's guide says, and
write Keras' own test predictions next to it. Run by hand; its outputs are committed and read by
lathe-onnx's tests (the imported graph must classify the 10,000 test images as Keras does).

Exact versions used for the committed files (Python 3.11, CPU):
    python3 -m venv kerasenv
    kerasenv/bin/pip install tensorflow-cpu==2.17.1 tf2onnx==1.16.1 "numpy<2"
    kerasenv/bin/python scripts/keras_mnist_onnx.py --data ../shared/data/mnist

The model is examples/mnist-mlp.yaml written in Keras: raw 0-255 pixels in, Rescaling(1/255),
Flatten, Dense 128 ReLU, Dropout 0.2, Dense 10 softmax; Adam 1e-3, sparse categorical
cross-entropy, 5 epochs of batch 32, seed 42. The export is the guide's two steps:
    model.export(saved_model_dir)                     # Keras 3
    python -m tf2onnx.convert --saved-model saved_model_dir --output mnist-mlp.onnx --opset 17
Writes crates/onnx/tests/fixtures/keras/{mnist-mlp.onnx, keras.json}; keras.json holds the
versions, Keras' test accuracy and its predicted digit for every test image (a string of 10,000
digits).
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile


def read_idx(path):
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "mnist"))
    p.add_argument("--out", default=os.path.join(here, "..", "crates", "onnx", "tests", "fixtures", "keras"))
    args = p.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(42)
    x_train = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).astype("float32")
    y_train = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    x_test = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).astype("float32")
    y_test = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))

    model = keras.Sequential([
        keras.Input(shape=(28, 28), name="image"),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=32, shuffle=True, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    predictions = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "mnist-mlp.onnx")
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved)
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", onnx_path,
                        "--opset", "17"], check=True)
    doc = {
        "tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
        "numpy": np.__version__, "python": sys.version.split()[0],
        "test_accuracy": float(accuracy),
        "predictions": "".join(str(int(d)) for d in predictions),
    }
    with open(os.path.join(args.out, "keras.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"test accuracy {accuracy:.4f}; wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes)")


if __name__ == "__main__":
    main()
