#!/usr/bin/env python3
"""Lathe's spec-less default networks against scikit-learn's MLPs on the same tables.

Tables: make_friedman1 (regression, R²) and make_classification (accuracy), 5,000 rows each,
seeds 0, 1, 2. Each seed splits 80/20 (train_test_split); Lathe trains on the 80 % with
`lathe train --data train.csv --label-column y` (no spec: the default network) and is scored
with `lathe eval` on the 20 %; scikit-learn fits StandardScaler + MLPRegressor/MLPClassifier
with the same hidden sizes (64, 64) on the same 80 % and is scored on the same 20 %.

    pip install scikit-learn
    cargo build --release
    python3 scripts/table_quality.py [--lathe target/release/lathe] [--json]
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.datasets import make_classification, make_friedman1
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROWS = 5000
SEEDS = (0, 1, 2)
HIDDEN = (64, 64)


def table(task, seed):
    if task == "regression":
        return make_friedman1(n_samples=ROWS, noise=1.0, random_state=seed)
    return make_classification(n_samples=ROWS, n_features=20, n_informative=10, n_classes=3, random_state=seed)


def write_csv(path, x, y):
    header = ",".join([f"x{i}" for i in range(x.shape[1])] + ["y"])
    y_text = y.astype(int) if y.dtype.kind in "iu" else y
    rows = np.column_stack([x, y_text])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.10g")


def lathe_score(lathe, work, task, seed, x_train, y_train, x_test, y_test):
    write_csv(work / "train.csv", x_train, y_train)
    write_csv(work / "test.csv", x_test, y_test)
    repo = str(work / "repo")
    name = f"{task}-{seed}"
    subprocess.run([lathe, "--repo", repo, "train", "--data", str(work / "train.csv"), "--label-column", "y",
                    "--name", name, "--seed", str(seed), "--test-fraction", "0.05", "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([lathe, "--repo", repo, "eval", name, "--data", str(work / "test.csv"), "--json"],
                         check=True, capture_output=True, text=True).stdout
    metrics = json.loads(out.strip().splitlines()[-1])["metrics"]
    return metrics["r2"] if task == "regression" else metrics["accuracy"]


def sklearn_score(task, seed, x_train, y_train, x_test, y_test):
    if task == "regression":
        model = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=HIDDEN, max_iter=500, random_state=seed))
        return r2_score(y_test, model.fit(x_train, y_train).predict(x_test))
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=500, random_state=seed))
    return accuracy_score(y_test, model.fit(x_train, y_train).predict(x_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lathe", default="target/release/lathe")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {}
    for task in ("regression", "classification"):
        lathe, sk = [], []
        for seed in SEEDS:
            x, y = table(task, seed)
            x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed)
            split = (x_train, y_train, x_test, y_test)
            with tempfile.TemporaryDirectory() as tmp:
                lathe.append(lathe_score(args.lathe, pathlib.Path(tmp), task, seed, *split))
            sk.append(sklearn_score(task, seed, *split))
        metric = "r2" if task == "regression" else "accuracy"
        report[task] = {"metric": metric, "lathe": lathe, "sklearn": sk,
                        "lathe_mean": float(np.mean(lathe)), "sklearn_mean": float(np.mean(sk)),
                        "difference": float(np.mean(lathe) - np.mean(sk))}
    if args.json:
        print(json.dumps(report))
    else:
        for task, r in report.items():
            print(f"{task:<15} {r['metric']:<9} lathe {r['lathe_mean']:.4f}  scikit-learn {r['sklearn_mean']:.4f}  "
                  f"difference {r['difference']:+.4f}  (seeds {', '.join(f'{v:.4f}' for v in r['lathe'])})")
    ok = all(r["difference"] >= -0.02 for r in report.values())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
