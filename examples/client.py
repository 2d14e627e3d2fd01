#!/usr/bin/env python3
"""Send MNIST test digits to a running `lathe serve` and print the predicted digits.

Usage:
    python3 examples/client.py [--url http://127.0.0.1:8080] [--model mnist] [--data ../shared/data/mnist] [--count 8]

It reads the first --count images of the MNIST test set (IDX, gzip), posts them to
TF Serving's :predict route as row "instances" (raw 0-255 pixels: the model version applies
its own preprocessing, as the model metadata's `parameters` say), and prints each prediction
next to the true label.
Needs only `requests` (pip install requests).
"""
import argparse
import gzip
import os
import struct
import sys

import requests


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return dims, data[4 + 4 * ndims :]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("LATHE_URL", "http://127.0.0.1:8080"))
    p.add_argument("--model", default="mnist")
    p.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "mnist"))
    p.add_argument("--count", type=int, default=8)
    args = p.parse_args()

    (n, rows, cols), pixels = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    count = min(args.count, n)
    size = rows * cols
    instances = [[list(pixels[i * size + r * cols : i * size + (r + 1) * cols]) for r in range(rows)] for i in range(count)]

    meta = requests.get(f"{args.url}/v2/models/{args.model}", timeout=30).json()
    print("the model says:", meta.get("parameters", {}).get("preprocessing_description", "nothing about its inputs"))
    resp = requests.post(f"{args.url}/v1/models/{args.model}:predict", json={"instances": instances}, timeout=30)
    if resp.status_code != 200:
        print(f"error {resp.status_code}: {resp.json().get('error')}", file=sys.stderr)
        return 1
    predictions = resp.json()["predictions"]
    digits = [max(range(len(p)), key=p.__getitem__) for p in predictions]
    right = sum(d == labels[i] for i, d in enumerate(digits))
    for i, (d, p) in enumerate(zip(digits, predictions)):
        print(f"image {i}: predicted {d} (p={p[d]:.3f}), true {labels[i]}")
    print(f"{right}/{count} correct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
