#!/usr/bin/env python3
"""Run `matcnn predict` on every network in ../shared/fixtures and record what comes out.

Used to prove that a refactoring changed nothing: run it with the binary before and after, then compare the two
manifests (one line per network: the sha256 of the output file, or of the error text when predict refused).

    python3 scripts/predict_all.py --bin /tmp/matcnn-before --out /tmp/before
    python3 scripts/predict_all.py --bin target/release/matcnn --out /tmp/after
    diff /tmp/before/MANIFEST /tmp/after/MANIFEST

Inputs are deterministic pseudo-random arrays (seeded by the network's name) of the network's own input size:
images [2, C, H, W] in 0..255, features [2, C], sequences [2, C, 7]. Needs numpy.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import zlib

import numpy as np


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def networks(binary, path):
    """(var or None, inspect json or None, error text) for each network in the file."""
    rc, out, err = run([binary, "inspect", path, "--json"])
    if rc == 0:
        return [(None, json.loads(out), "")]
    m = re.search(r"several networks: (.*?); choose one", err)
    if not m:
        return [(None, None, err.strip())]
    found = []
    for var in [v.strip() for v in m.group(1).split(",")]:
        var = var.split(" ")[0]
        rc, out, err = run([binary, "inspect", path, "--var", var, "--json"])
        found.append((var, json.loads(out) if rc == 0 else None, err.strip()))
    return found


def make_input(name, inp):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    # Fully convolutional networks (MatConvNet) leave H and W open: give them 32.
    size = [32 if d is None else d for d in inp["size"]]
    if inp["kind"].lower().startswith("image") and len(size) == 3:
        h, w, c = size
        return (rng.random((2, c, h, w)) * 255).astype(np.float32)
    if "sequence" in inp["kind"].lower():
        return rng.standard_normal((2, size[0], 7)).astype(np.float32)
    return rng.standard_normal((2, size[0])).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lines = []
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(args.fixtures) for f in fs if f.endswith(".mat")
    )
    for path in files:
        rel = os.path.relpath(path, args.fixtures)
        for var, info, err in networks(args.bin, path):
            name = rel + (":" + var if var else "")
            if info is None or info.get("input") is None:
                lines.append(f"{name}\tinspect-error\t{hashlib.sha256(err.encode()).hexdigest()[:16]}")
                continue
            slug = re.sub(r"[^A-Za-z0-9]+", "_", name)
            x = make_input(name, info["input"])
            xin = os.path.join(args.out, slug + ".in.npy")
            np.save(xin, x)
            out = os.path.join(args.out, slug + ".out.npy")
            if os.path.exists(out):
                os.remove(out)
            cmd = [args.bin, "predict", "--model", path, "--input", xin, "--output", out]
            if var:
                cmd += ["--var", var]
            rc, _, err = run(cmd)
            if rc == 0:
                digest = hashlib.sha256(open(out, "rb").read()).hexdigest()[:16]
                lines.append(f"{name}\tok\t{digest}")
            else:
                lines.append(f"{name}\tpredict-error\t{hashlib.sha256(err.encode()).hexdigest()[:16]}\t{err.strip()[:120]}")
    # The built-in demo through `infer` on the sample digits.
    data = os.path.join(os.path.dirname(__file__), "..", "data")
    rc, out, err = run([args.bin, "infer", "--json", data])
    lines.append(f"demo-infer\t{rc}\t{hashlib.sha256((out + err).encode()).hexdigest()[:16]}")
    with open(os.path.join(args.out, "MANIFEST"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = sum(1 for l in lines if "\tok\t" in l)
    print(f"{ok} networks predicted, {len(lines)} entries", file=sys.stderr)


if __name__ == "__main__":
    main()
