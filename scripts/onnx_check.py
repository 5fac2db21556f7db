#!/usr/bin/env python3
"""Checks an ONNX model exported by matcnn, and runs it in onnxruntime.

    onnx_check.py MODEL.onnx INPUT.npy EXPECTED.npy [--max-abs A | --max-rel R]
                  [--reference OTHER.onnx] [--classes N] [--no-normalization]

- onnx.checker.check_model(full_check=True) (includes shape inference);
- the interface matcnn promises: producer "matcnn", one input "input" [batch, C, (H, W)] (or
  [batch, C, time] for sequence networks) and
  one output "output" [batch, ...] float32 with a symbolic batch dimension, `classes` metadata
  (a JSON array of N names) when --classes N is given;
- onnxruntime on INPUT (matcnn's input, NCHW, [N, C] or [N, C, T]) gives EXPECTED (matcnn's output, any
  shape with the same number of values): max |difference| <= A, or <= R * max |EXPECTED|;
- with --reference, OTHER.onnx (any single-input model, e.g. MATLAB's own export) gives the
  same outputs on INPUT, within the same tolerance.

Prints one line `RESULT {json}` with the differences, exits 1 on any failure.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def session(model_bytes):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def run(sess, x):
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("expected")
    ap.add_argument("--max-abs", type=float)
    ap.add_argument("--max-rel", type=float)
    ap.add_argument("--reference")
    ap.add_argument("--classes", type=int)
    args = ap.parse_args()

    failures = []
    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    if model.producer_name != "matcnn":
        failures.append(f"producer_name is {model.producer_name!r}")
    g = model.graph
    ins = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    if [i.name for i in ins] != ["input"] or [o.name for o in g.output] != ["output"]:
        failures.append(
            f"inputs {[i.name for i in ins]} / outputs {[o.name for o in g.output]}"
        )
    for v in list(ins) + list(g.output):
        t = v.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT:
            failures.append(f"{v.name} is not float32")
        if not t.shape.dim or not t.shape.dim[0].dim_param:
            failures.append(f"{v.name} has no symbolic batch dimension")
    meta = {p.key: p.value for p in model.metadata_props}
    if args.classes is not None:
        classes = json.loads(meta.get("classes", "[]"))
        if len(classes) != args.classes:
            failures.append(f"metadata classes {classes} (expected {args.classes})")

    x = np.load(args.input).astype(np.float32)
    expected = np.load(args.expected).astype(np.float32)
    sess = session(model.SerializeToString())
    y = run(sess, x)
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0

    def diff(out, what):
        if out.size != expected.size:
            failures.append(f"{what}: {out.shape} values, expected {expected.shape}")
            return None, None
        d = float(np.max(np.abs(out.reshape(-1) - expected.reshape(-1))))
        rel = d / scale if scale > 0 else d
        if args.max_abs is not None and d > args.max_abs:
            failures.append(f"{what}: max |difference| {d:.3g} > {args.max_abs}")
        if args.max_rel is not None and rel > args.max_rel:
            failures.append(f"{what}: max relative difference {rel:.3g} > {args.max_rel}")
        return d, rel

    result = {"output_shape": list(y.shape), "nodes": len(g.node), "opset": model.opset_import[0].version}
    result["max_abs"], result["max_rel"] = diff(y, "onnxruntime vs matcnn")
    if args.reference:
        r = run(session(onnx.load(args.reference).SerializeToString()), x)
        result["reference_max_abs"], _ = diff(r, "reference model vs matcnn")
        result["matcnn_vs_reference_max_abs"] = float(
            np.max(np.abs(r.reshape(-1) - y.reshape(-1)))
        ) if r.size == y.size else None
    print("RESULT " + json.dumps(result))
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
