#!/usr/bin/env python3
"""Times one training step (forward, loss, backward, update) in matcnn and in PyTorch.

    compare_train.py [--model FILE.mat] [--batch 32,128] [--rounds 3] [--repeat 10]
                     [--threads 2] [--matcnn BIN]

matcnn: `matcnn bench --train --json` (sgdm, lr 0.01, momentum 0.9, L2 1e-4: finetune's solver).
PyTorch: the same step on matcnn's PyTorch export of the same network (`matcnn export --format
pytorch`), in training mode (batch norm on batch statistics, dropout on), softmax dropped for
the cross-entropy of the logits, torch.optim.SGD(lr 0.01, momentum 0.9, weight_decay 1e-4), the
same input size, seeded noise in [0, 255], labels cycling over the classes. Both use --threads
threads (RAYON_NUM_THREADS for matcnn, torch.set_num_threads). The rounds interleave the two,
so that load on the machine hits both alike; each reports the median of its per-round medians.
Prints a table and `RESULT {json}` with the ratio matcnn / PyTorch per batch size. Exits 0 with
"skipped: torch not installed" without torch.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError:
    print("skipped: torch not installed")
    sys.exit(0)


def matcnn_step(bin_, model, batch, repeat, threads):
    cmd = [bin_, "bench", "--train", "--json", "--batch", str(batch), "--repeat", str(repeat)]
    if model:
        cmd += ["--model", model]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["train"][0]["median_ms"]


def torch_model(export_dir):
    spec = importlib.util.spec_from_file_location("m", os.path.join(export_dir, "model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.build_model()
    for name, sub in list(m.named_children()):
        if isinstance(sub, nn.Softmax):
            setattr(m, name, nn.Identity())
    return m.train(), len(mod.CLASSES), mod


def input_shape(mod):
    doc = mod.__doc__ or ""
    for line in doc.splitlines():
        if line.strip().startswith("Input:"):
            dims = line.split("[")[1].split("]")[0].split(",")
            return [int(d) for d in dims[1:]]
    raise SystemExit("cannot read the input shape from model.py")


def torch_step(export_dir, batch, repeat, warmup=5):
    model, classes, mod = torch_model(export_dir)
    c, h, w = input_shape(mod)
    rng = np.random.default_rng(batch)
    x = torch.from_numpy((rng.random((batch, c, h, w)) * 255).astype(np.float32))
    y = torch.arange(batch) % classes
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(warmup + repeat):
        t0 = time.perf_counter()
        opt.zero_grad()
        out = model(x).reshape(batch, -1)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    if os.environ.get("COMPARE_TRAIN_DEBUG"):
        print([round(t) for t in times], file=sys.stderr)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--batch", default="32,128")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--matcnn", default=os.path.join(here, "..", "target", "release", "matcnn"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        export = os.path.join(tmp, "export")
        cmd = [args.matcnn, "export", "--format", "pytorch", "--output", export]
        if args.model:
            cmd += ["--model", args.model]
        subprocess.run(cmd, check=True, capture_output=True)
        rows = []
        for b in [int(v) for v in args.batch.split(",")]:
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(matcnn_step(args.matcnn, args.model, b, args.repeat, args.threads))
                theirs.append(torch_step(export, b, args.repeat))
            m, t = statistics.median(ours), statistics.median(theirs)
            rows.append({"batch": b, "matcnn_ms": m, "pytorch_ms": t, "ratio": m / t})
            print(f"batch {b:>4}: matcnn {m:9.2f} ms  pytorch {t:9.2f} ms  ratio {m / t:5.2f}")
    print("RESULT " + json.dumps({"threads": args.threads, "train": rows}))


if __name__ == "__main__":
    sys.exit(main())
