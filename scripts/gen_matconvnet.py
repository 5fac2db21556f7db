#!/usr/bin/env python3
"""Writes two large MatConvNet networks with random weights, for benchmarks (never committed).

    gen_matconvnet.py OUT_DIR [--only vgg16|resnet18] [--seed N] [--force]
                      [--no-verify] [--matcnn PATH]

- `vgg16.mat`, `vgg16_uncompressed.mat`: SimpleNN (`net.layers` = cell of layer structs), VGG-16
  shape: 13 conv 3x3 pad 1 + relu, 5 max pools 2x2/2, fc6 = conv 7x7x512x4096, fc7 = conv
  1x1x4096x4096, fc8 = conv 1x1x4096x1000, softmax (138.4 M float32 parameters, ~553 MB).
- `resnet18.mat`, `resnet18_uncompressed.mat`: DagNN saved as `net.saveobj()` (`vars`, `params`,
  `layers` struct arrays, `meta`), ResNet-18 shape: conv 7x7/2 + BN + ReLU + max pool 3x3/2,
  8 basic blocks [64, 128, 256, 512] with projection shortcuts (conv 1x1/2 + BN) where the shape
  changes, dagnn.Sum, average pool 7x7, fc1000 as a 1x1 conv, softmax (11.7 M parameters).

Field names and value shapes follow real MatConvNet files (imagenet-vgg-verydeep-16.mat,
imagenet-resnet-50-dag.mat, the DnCNN fixtures): W [kh,kw,Cin,Cout] single, b [Cout,1] single,
pad [t b l r], stride [sy sx], BatchNorm moments [C,2] = [mean, sigma],
`meta.normalization.imageSize` [224 224 3] and a per-channel `averageImage` [1,1,3].
Written with scipy.io.savemat(format='5'), compressed (`do_compression=True`) and not.

Weights: He-normal convolutions (activations keep their scale for inputs in [0, 255] minus the
average image); the last layer is scaled so the logits have a standard deviation of about 2 and
the softmax is not saturated (so comparing outputs means something).

Existing files are kept unless --force. Unless --no-verify, each file is then checked with the
matcnn binary (--matcnn, else $MATCNN, else target/release/matcnn of this checkout):
`inspect --json` (layer count, learnables), `bench --batch 1 --repeat 1 --warmup 0`, and for the
compressed file an ONNX export run in onnxruntime against `matcnn predict` on the same random
input (max |diff| <= 1e-4 * max |output|); the uncompressed twin must predict bit-identically.
Exits 1 when a check fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.io

AVERAGE_IMAGE = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape(1, 1, 3)
INPUT_RMS = 74.0  # rms of uniform [0, 255] noise minus the average image
NUM_CLASSES = 1000


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def row(values):
    """A 1xN double row vector, as MATLAB stores [a b c]."""
    return np.asarray(values, dtype=np.float64).reshape(1, -1)


def cell(items):
    """A 1xN cell (N may be 0: an empty 0x0 cell, as MATLAB writes `{}`)."""
    if len(items) == 0:
        return np.empty((0, 0), dtype=object)
    c = np.empty((1, len(items)), dtype=object)
    for i, x in enumerate(items):
        c[0, i] = x
    return c


def struct_array(fields, records):
    """A 1xN struct array with the given field order."""
    a = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            a[f][0, i] = r[f]
    return a


def he(rng, shape, fan_in, scale=1.0):
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= np.float32(scale * np.sqrt(2.0 / fan_in))
    return w


def small(rng, shape, std):
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def meta(rng):
    names = cell([f"n{1440764 + 17 * i:08d}" for i in range(NUM_CLASSES)])
    descriptions = cell([f"random class {i + 1}" for i in range(NUM_CLASSES)])
    return {
        "inputs": {"name": "input", "size": row([224, 224, 3, 10])},
        "classes": {"name": names, "description": descriptions},
        "normalization": {
            "imageSize": row([224, 224, 3]),
            "averageImage": AVERAGE_IMAGE.copy(),
            "keepAspect": np.array([[True]]),
            "border": row([32, 32]),
            "cropSize": np.array([[0.875]]),
            "interpolation": "bilinear",
        },
    }


# --------------------------------------------------------------------------------------------
# VGG-16 (SimpleNN)

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16(rng):
    layers = []
    learnables = 0

    def conv(name, kh, kw, cin, cout, pad, last=False):
        nonlocal learnables
        fan_in = kh * kw * cin
        if last:
            w = small(rng, (kh, kw, cin, cout), 2.0 / (np.sqrt(fan_in) * INPUT_RMS))
        else:
            w = he(rng, (kh, kw, cin, cout), fan_in)
        b = small(rng, (cout, 1), 0.01)
        learnables += w.size + b.size
        layers.append(
            {
                "name": name,
                "type": "conv",
                "weights": cell([w, b]),
                "size": row([kh, kw, cin, cout]),
                "pad": row([pad] * 4),
                "stride": row([1, 1]),
                "precious": np.array([[False]]),
                "dilate": row([1, 1]),
                "opts": cell([]),
            }
        )

    def relu(name):
        layers.append({"name": name, "type": "relu", "leak": np.array([[0.0]]),
                       "precious": np.array([[False]])})

    cin, block, idx = 3, 1, 1
    for v in VGG16_CFG:
        if v == "M":
            layers.append(
                {
                    "name": f"pool{block}",
                    "type": "pool",
                    "method": "max",
                    "pool": row([2, 2]),
                    "stride": row([2, 2]),
                    "pad": row([0, 0, 0, 0]),
                    "precious": np.array([[False]]),
                    "opts": cell([]),
                }
            )
            block, idx = block + 1, 1
        else:
            conv(f"conv{block}_{idx}", 3, 3, cin, v, 1)
            relu(f"relu{block}_{idx}")
            cin, idx = v, idx + 1
    conv("fc6", 7, 7, 512, 4096, 0)
    relu("relu6")
    conv("fc7", 1, 1, 4096, 4096, 0)
    relu("relu7")
    conv("fc8", 1, 1, 4096, NUM_CLASSES, 0, last=True)
    layers.append({"name": "prob", "type": "softmax", "precious": np.array([[False]])})
    net = {"layers": cell(layers), "meta": meta(rng)}
    # matcnn adds an input layer.
    return net, {"layers": len(layers) + 1, "learnables": learnables}


# --------------------------------------------------------------------------------------------
# ResNet-18 (DagNN, net.saveobj() layout)


def resnet18(rng):
    params, layers, var_names = [], [], ["input"]
    counts = {"learnables": 0}

    def param(name, value, lr, wd, learnable=True):
        params.append({"name": name, "value": value, "learningRate": np.array([[float(lr)]]),
                       "weightDecay": np.array([[float(wd)]])})
        if learnable:
            counts["learnables"] += value.size
        return name

    def add(name, ty, inputs, pnames, block):
        layers.append(
            {
                "name": name,
                "type": ty,
                "inputs": cell(inputs),
                "outputs": cell([name]),
                "params": cell(pnames),
                "block": block,
            }
        )
        var_names.append(name)
        return name

    def conv(name, x, k, cin, cout, stride, pad, bias=False, last=False):
        fan_in = k * k * cin
        if last:
            # The residual sums grow the activations about 3x over the input's scale.
            w = small(rng, (k, k, cin, cout), 0.3 * 2.0 / (np.sqrt(fan_in) * INPUT_RMS))
        else:
            w = he(rng, (k, k, cin, cout), fan_in)
        p = [param(f"{name}_filter", w, 1, 1)]
        if bias:
            p.append(param(f"{name}_bias", small(rng, (cout, 1), 0.01), 2, 0))
        return add(
            name,
            "dagnn.Conv",
            [x],
            p,
            {
                "size": row([k, k, cin, cout]),
                "hasBias": np.array([[bias]]),
                "opts": cell(["CudnnWorkspaceLimit", np.array([[2147483648.0]])]),
                "pad": row([pad] * 4 if np.isscalar(pad) else pad),
                "stride": row([stride, stride]),
                "dilate": row([1, 1]),
            },
        )

    def bn(name, x, c):
        g = (1.0 + 0.1 * rng.standard_normal((c, 1))).astype(np.float32)
        b = small(rng, (c, 1), 0.1)
        mean = small(rng, (c, 1), 0.1)
        sigma = rng.uniform(0.8, 1.25, (c, 1)).astype(np.float32)
        p = [
            param(f"{name}_mult", g, 2, 0),
            param(f"{name}_bias", b, 1, 0),
            param(f"{name}_moments", np.concatenate([mean, sigma], axis=1), 0.1, 0,
                  learnable=False),
        ]
        return add(name, "dagnn.BatchNorm", [x], p,
                   {"numChannels": np.array([[float(c)]]), "epsilon": np.array([[1e-5]]),
                    "opts": cell([])})

    def relu(name, x):
        return add(name, "dagnn.ReLU", [x], [],
                   {"useShortCircuit": np.array([[True]]), "leak": np.array([[0.0]]),
                    "opts": cell([])})

    def pool(name, x, method, size, stride, pad):
        return add(name, "dagnn.Pooling", [x], [],
                   {"method": method, "poolSize": row([size, size]), "opts": cell([]),
                    "pad": row(pad), "stride": row([stride, stride])})

    x = conv("conv1", "input", 7, 3, 64, 2, 3)
    x = bn("bn_conv1", x, 64)
    x = relu("conv1_relu", x)
    x = pool("pool1", x, "max", 3, 2, [0, 1, 0, 1])
    cin = 64
    for stage, cout in zip([2, 3, 4, 5], [64, 128, 256, 512]):
        for blk in "ab":
            stride = 2 if (blk == "a" and stage > 2) else 1
            n = f"{stage}{blk}"
            y = conv(f"res{n}_branch2a", x, 3, cin, cout, stride, 1)
            y = bn(f"bn{n}_branch2a", y, cout)
            y = relu(f"res{n}_branch2a_relu", y)
            y = conv(f"res{n}_branch2b", y, 3, cout, cout, 1, 1)
            y = bn(f"bn{n}_branch2b", y, cout)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = conv(f"res{n}_branch1", x, 1, cin, cout, stride, 0)
                shortcut = bn(f"bn{n}_branch1", shortcut, cout)
            s = add(f"res{n}", "dagnn.Sum", [shortcut, y], [], {})
            x = relu(f"res{n}_relu", s)
            cin = cout
    x = pool("pool5", x, "avg", 7, 1, [0, 0, 0, 0])
    x = conv("fc1000", x, 1, 512, NUM_CLASSES, 1, 0, bias=True, last=True)
    add("prob", "dagnn.SoftMax", [x], [], {})

    fields_layers = ["name", "type", "inputs", "outputs", "params", "block"]
    net = {
        "vars": struct_array(["name", "precious"],
                             [{"name": v, "precious": np.array([[False]])} for v in var_names]),
        "params": struct_array(["name", "value", "learningRate", "weightDecay"], params),
        "layers": struct_array(fields_layers, layers),
        "meta": meta(rng),
    }
    return net, {"layers": len(layers) + 1, "learnables": counts["learnables"]}


NETS = {"vgg16": vgg16, "resnet18": resnet18}


# --------------------------------------------------------------------------------------------
# Verification with matcnn (and onnxruntime)


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


def verify(matcnn, path, expected, tmp, reference=None):
    """Checks one file; returns matcnn's prediction on the check input."""
    info = json.loads(run([matcnn, "inspect", "--model", path, "--json"]))
    n_layers = len(info["layers"])
    problems = []
    if n_layers != expected["layers"]:
        problems.append(f"{n_layers} layers, expected {expected['layers']}")
    if info["learnables_total"] != expected["learnables"]:
        problems.append(f"{info['learnables_total']} learnables, expected {expected['learnables']}")
    if info.get("unsupported"):
        problems.append(f"unsupported layers: {info['unsupported']}")
    log(f"  inspect: {n_layers} layers, {info['learnables_total']} learnables, "
        f"source {info['source']}")
    t = time.time()
    b = json.loads(run([matcnn, "bench", "--model", path, "--batch", "1", "--repeat", "1",
                        "--warmup", "0", "--json"]))
    log(f"  bench: load {b['load_ms']:.0f} ms, batch 1 forward {b['forward'][0]['median_ms']:.0f} ms "
        f"({time.time() - t:.1f} s)")
    x_path = tmp / "check_input.npy"
    if not x_path.exists():
        x = np.random.default_rng(12345).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
        np.save(x_path, x)
    x = np.load(x_path)
    y_path = tmp / (path.stem + "_matcnn.npy")
    run([matcnn, "predict", "--model", path, "--input", x_path, "--output", y_path, "--force"])
    y = np.load(y_path).reshape(1, -1)
    if not np.all(np.isfinite(y)):
        problems.append("non-finite outputs")
    if reference is not None:
        if not np.array_equal(y, reference):
            problems.append(f"prediction differs from the compressed file's "
                            f"(max {np.abs(y - reference).max():.3g})")
        else:
            log("  prediction bit-identical to the compressed file's")
    else:
        import onnxruntime as ort

        onnx_path = tmp / (path.stem + ".onnx")
        run([matcnn, "export", "--model", path, "--format", "onnx", "--output", onnx_path,
             "--force"])
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        z = sess.run(None, {"input": x})[0].reshape(1, -1)
        diff = float(np.abs(y - z).max())
        rel = diff / float(np.abs(y).max())
        log(f"  ONNX vs matcnn: max |diff| {diff:.3g}, relative to max |output| {rel:.3g}; "
            f"top-1 {int(y.argmax())} vs {int(z.argmax())}, max prob {float(y.max()):.3f}")
        if not rel <= 1e-4:
            problems.append(f"ONNX export disagrees with matcnn: relative diff {rel:.3g}")
        onnx_path.unlink()
    if problems:
        raise RuntimeError(f"{path}: " + "; ".join(problems))
    return y


def find_matcnn(arg):
    for c in [arg, os.environ.get("MATCNN"),
              Path(__file__).resolve().parent.parent / "target" / "release" / "matcnn"]:
        if c and Path(c).is_file():
            return Path(c)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--only", choices=sorted(NETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rewrite existing files")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--matcnn", help="the matcnn binary used to verify the files")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    names = [args.only] if args.only else list(NETS)
    failed = False
    for i, name in enumerate(names):
        files = {True: args.out_dir / f"{name}.mat", False: args.out_dir / f"{name}_uncompressed.mat"}
        todo = [c for c, p in files.items() if args.force or not p.exists()]
        t = time.time()
        net, expected = NETS[name](np.random.default_rng(args.seed + list(NETS).index(name)))
        log(f"{name}: built in {time.time() - t:.1f} s: {expected['layers']} layers with input, "
            f"{expected['learnables']} learnables")
        for compressed in todo:
            path = files[compressed]
            t = time.time()
            part = path.with_suffix(".mat.part")
            scipy.io.savemat(part, {"net": net}, appendmat=False, format="5",
                             do_compression=compressed, oned_as="column")
            part.replace(path)
            log(f"  wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.time() - t:.1f} s")
        for compressed in [True, False]:
            if not files[compressed].exists():
                log(f"  {files[compressed]} missing")
        del net
        if args.no_verify:
            continue
        matcnn = find_matcnn(args.matcnn)
        if matcnn is None:
            log("  no matcnn binary (build with `cargo build --release`, or pass --matcnn): "
                "not verified")
            continue
        with tempfile.TemporaryDirectory(prefix="matcnn-gen-") as tmp:
            tmp = Path(tmp)
            try:
                ref = None
                for compressed in [True, False]:
                    log(f" verify {files[compressed].name}")
                    t = time.time()
                    ref = verify(matcnn, files[compressed], expected, tmp, ref)
                    log(f"  ok ({time.time() - t:.1f} s)")
            except RuntimeError as e:
                log(f"FAILED: {e}")
                failed = True
    log(f"scipy {scipy.__version__}, numpy {np.__version__}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
