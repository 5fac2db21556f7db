#!/usr/bin/env python3
"""Runs a PyTorch export of matcnn with torch and compares it with matcnn's outputs.

    check_pytorch.py EXPORT_DIR INPUT.npy EXPECTED.npy [--max-abs A | --max-rel R]

Imports EXPORT_DIR/model.py, builds the model with build_model() (weights.safetensors), runs it
on INPUT and compares with EXPECTED (matcnn's output, same number of values). Also loads
model.pt with torch.load(weights_only=True) into a fresh model with load_state_dict(strict=True)
and checks that it gives the same outputs. Exits 0 with "skipped: torch not installed" when
torch is absent. Prints `RESULT {json}`, exits 1 on any failure.
"""

import argparse
import importlib.util
import json
import os
import sys

import numpy as np

try:
    import torch
except ImportError:
    print("skipped: torch not installed")
    sys.exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("input")
    ap.add_argument("expected")
    ap.add_argument("--max-abs", type=float)
    ap.add_argument("--max-rel", type=float)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location(
        "matcnn_export_model", os.path.join(args.export_dir, "model.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    x = torch.from_numpy(np.load(args.input).astype(np.float32))
    expected = np.load(args.expected).astype(np.float32).reshape(-1)
    failures = []
    with torch.no_grad():
        model = mod.build_model()
        y = model(x).numpy().reshape(-1)
        fresh = mod.build_model(weights=False)
        sd = torch.load(os.path.join(args.export_dir, "model.pt"), weights_only=True)
        fresh.load_state_dict(sd, strict=True)
        y_pt = fresh(x).numpy().reshape(-1)
    if y.size != expected.size:
        failures.append(f"output has {y.size} values, expected {expected.size}")
        d = rel = float("nan")
    else:
        d = float(np.max(np.abs(y - expected)))
        scale = float(np.max(np.abs(expected))) or 1.0
        rel = d / scale
        if args.max_abs is not None and d > args.max_abs:
            failures.append(f"max |difference| {d:.3g} > {args.max_abs}")
        if args.max_rel is not None and rel > args.max_rel:
            failures.append(f"max relative difference {rel:.3g} > {args.max_rel}")
    d_pt = float(np.max(np.abs(y - y_pt)))
    if d_pt != 0.0:
        failures.append(f"model.pt weights give different outputs ({d_pt:.3g})")
    print("RESULT " + json.dumps({"torch": torch.__version__, "max_abs": d, "max_rel": rel, "pt_vs_safetensors": d_pt}))
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
