"""Baseline for `lathe bench embed --baseline-python`: sentence-transformers on PyTorch (CPU).

Reads one JSON object on stdin: {"model": DIR, "threads": N, "seconds": S,
"cases": [{"length": "short", "text": "...", "batch": 1}, ...]} and prints one JSON object
per case: {"length", "batch", "tokens", "sentences_per_second"}.
"""
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

job = json.load(sys.stdin)
torch.set_num_threads(job["threads"])
model = SentenceTransformer(job["model"], device="cpu")
with torch.inference_mode():
    for case in job["cases"]:
        texts = [case["text"]] * case["batch"]
        model.encode(texts, batch_size=case["batch"])  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < job["seconds"]:
            model.encode(texts, batch_size=case["batch"])
            done += case["batch"]
        rate = done / (time.perf_counter() - start)
        tokens = len(model.tokenizer(case["text"], truncation=True, max_length=model.max_seq_length)["input_ids"])
        print(json.dumps({"length": case["length"], "batch": case["batch"], "tokens": tokens,
                          "sentences_per_second": rate, "torch": torch.__version__,
                          "threads": torch.get_num_threads()}), flush=True)
