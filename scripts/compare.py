#!/usr/bin/env python3
"""matcnn against onnxruntime (forward pass) and scipy (reading .mat files), on the same machine.

    compare.py [--nets mnist,squeezenet,vgg16,resnet18] [--batches 1,32] [--rounds 5]
               [--threads 2] [--bench-dir DIR] [--markdown] [--repeat K]
               [--net-batches vgg16=1] [--load-rounds 3] [--no-forward] [--no-load]
               [--matcnn PATH]

Forward pass, per network and batch size: the network is exported once with
`matcnn export --format onnx` (cached in the bench dir) and a seeded input `.npy`
(uniform [0, 255], [N, C, H, W] float32) is written. Then, for each of --rounds rounds, in
alternating order: `matcnn bench --json --batch B --repeat K --warmup 1 --input X.npy`
(RAYON_NUM_THREADS = --threads) and an onnxruntime CPU session (intra_op_num_threads = --threads,
inter_op_num_threads = 1, created once) timing one warm-up and K runs of the same input. All
per-run times are pooled; the table gives both medians and their ratio (matcnn / ORT, > 1 means
matcnn is slower). matcnn's times include making the input tensor and reading the output back;
ORT's include its input copy and output allocation.

Loading (vgg16, vgg16_uncompressed, resnet18, resnet18_uncompressed, when in --nets):
`/usr/bin/time -v matcnn bench --load-only --json --model F` (read + import + build the Burn
module; the JSON's load_ms is the in-process time) against `/usr/bin/time -v python -c
'scipy.io.loadmat(F)'` (the in-process loadmat time is measured too, to separate Python's
start-up), interleaved for --load-rounds rounds: median wall time and peak RSS ("Maximum
resident set size") of each, and matcnn's peak RSS over the weights' size (learnables x 4 bytes).

mnist and squeezenet are the fixtures in ../shared/fixtures; vgg16 and resnet18 are generated
into the bench dir by gen_matconvnet.py (with this Python) when missing. Progress goes to
stderr, the tables to stdout (--markdown: a Markdown table with the machine and versions).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import scipy

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
FIXTURE_NETS = {
    "mnist": FIXTURES / "mw-workshop-mnist" / "MNIST_Network.mat",
    "squeezenet": FIXTURES / "gender-audio" / "trainedNetwork_1.mat",
}
GENERATED = ["vgg16", "resnet18"]
# Timed runs per round when --repeat is not given (the big networks take seconds per pass).
DEFAULT_REPEAT = {"mnist": 20, "squeezenet": 10, "resnet18": 5, "vgg16": 3}
DEFAULT_NET_BATCHES = {"vgg16": [1]}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x]


def run(cmd, env=None):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r


def net_path(name, bench_dir, gen_ok=True):
    if name in FIXTURE_NETS:
        return FIXTURE_NETS[name]
    base = name.removesuffix("_uncompressed")
    if base not in GENERATED:
        raise SystemExit(f"unknown network {name!r} (known: {', '.join([*FIXTURE_NETS, *GENERATED])})")
    p = bench_dir / f"{name}.mat"
    if not p.exists() and gen_ok:
        log(f"[gen] {p} missing: running gen_matconvnet.py")
        subprocess.run([sys.executable, ROOT / "scripts" / "gen_matconvnet.py", bench_dir,
                        "--only", base, "--no-verify"], check=True)
    return p


# --------------------------------------------------------------------------------------------
# Forward pass


def ort_session(onnx_path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def ort_times(sess, x, repeat, warmup=1):
    feed = {"input": x}
    for _ in range(warmup):
        sess.run(None, feed)
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, feed)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def forward(args, name, batches, matcnn, env):
    model = net_path(name, args.bench_dir)
    onnx_path = args.bench_dir / f"{name}.onnx"
    if not onnx_path.exists() or onnx_path.stat().st_mtime < model.stat().st_mtime:
        log(f"[{name}] exporting ONNX")
        run([matcnn, "export", "--model", model, "--format", "onnx", "--output", onnx_path,
             "--force"])
    sess = ort_session(onnx_path, args.threads)
    shape = sess.get_inputs()[0].shape[1:]
    repeat = args.repeat or DEFAULT_REPEAT.get(name, 10)
    rows = []
    for b in batches:
        x_path = args.bench_dir / f"{name}_input_b{b}.npy"
        x = np.random.default_rng(b).uniform(0, 255, (b, *shape)).astype(np.float32)
        np.save(x_path, x)
        m_times, o_times = [], []
        for r in range(args.rounds):
            def m():
                out = run([matcnn, "bench", "--model", model, "--json", "--batch", b, "--repeat",
                           repeat, "--warmup", 1, "--input", x_path], env=env).stdout
                m_times.extend(json.loads(out)["forward"][0]["times_ms"])

            def o():
                o_times.extend(ort_times(sess, x, repeat))

            for f in ([m, o] if r % 2 == 0 else [o, m]):
                f()
            log(f"[{name}] batch {b} round {r + 1}/{args.rounds}: matcnn "
                f"{statistics.median(m_times):.2f} ms, ORT {statistics.median(o_times):.2f} ms")
        mm, om = statistics.median(m_times), statistics.median(o_times)
        rows.append({"net": name, "input": "x".join(map(str, shape)), "batch": b,
                     "runs": len(m_times), "matcnn_ms": mm, "ort_ms": om, "ratio": mm / om})
    return rows


# --------------------------------------------------------------------------------------------
# Loading


def time_v(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (stdout, wall s, peak RSS bytes)."""
    r = run(["/usr/bin/time", "-v", *cmd], env=env)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    h, mnt, s = wall.groups()
    secs = int(h or 0) * 3600 + int(mnt) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) * 1024
    return r.stdout, secs, rss


LOADMAT = ("import sys, time, scipy.io; t = time.perf_counter(); scipy.io.loadmat(sys.argv[1]); "
           "print((time.perf_counter() - t) * 1e3)")


def load(args, name, matcnn, env):
    model = net_path(name, args.bench_dir)
    info = json.loads(run([matcnn, "inspect", "--model", model, "--json"]).stdout)
    weights = info["learnables_total"] * 4
    m, p = {"wall": [], "rss": [], "inproc": []}, {"wall": [], "rss": [], "inproc": []}
    for r in range(args.load_rounds):
        def mat():
            out, wall, rss = time_v([matcnn, "bench", "--load-only", "--json", "--model", model],
                                    env=env)
            m["wall"].append(wall), m["rss"].append(rss)
            m["inproc"].append(json.loads(out)["load_ms"])

        def py():
            out, wall, rss = time_v([sys.executable, "-c", LOADMAT, model], env=env)
            p["wall"].append(wall), p["rss"].append(rss), p["inproc"].append(float(out))

        for f in ([mat, py] if r % 2 == 0 else [py, mat]):
            f()
        log(f"[load {name}] round {r + 1}/{args.load_rounds}: matcnn {m['wall'][-1]:.2f} s "
            f"{m['rss'][-1] / 2**20:.0f} MiB, scipy {p['wall'][-1]:.2f} s {p['rss'][-1] / 2**20:.0f} MiB")
    med = statistics.median
    return {
        "file": model.name, "file_mb": model.stat().st_size / 1e6, "weights_mb": weights / 1e6,
        "matcnn_wall_s": med(m["wall"]), "matcnn_load_ms": med(m["inproc"]),
        "matcnn_rss_mb": med(m["rss"]) / 1e6,
        "scipy_wall_s": med(p["wall"]), "scipy_loadmat_ms": med(p["inproc"]),
        "scipy_rss_mb": med(p["rss"]) / 1e6,
        "rss_over_weights": med(m["rss"]) / weights,
    }


# --------------------------------------------------------------------------------------------
# Output


def machine(args, matcnn):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    version = run([matcnn, "--version"]).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in args.loadavg)
    return (f"{cpu}, {os.cpu_count()} cores (load average {load} at start), "
            f"{args.threads} threads for both; {version} "
            f"(Burn flex CPU backend), onnxruntime {ort.__version__} (CPU), scipy "
            f"{scipy.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def table(headers, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([fmt(headers), fmt(["-" * x for x in w])] + [fmt(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="mnist,squeezenet,vgg16,resnet18")
    ap.add_argument("--batches", default="1,32", help="batch sizes (all networks)")
    ap.add_argument("--net-batches", action="append", default=[],
                    help="NET=B1,B2 overrides --batches for one network (default vgg16=1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, help="timed runs per round (default: per network)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-dir", type=Path, default=ROOT / "target" / "bench-nets")
    ap.add_argument("--load-rounds", type=int, default=3)
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--matcnn", type=Path, default=ROOT / "target" / "release" / "matcnn")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    args.bench_dir.mkdir(parents=True, exist_ok=True)
    if not args.matcnn.is_file():
        raise SystemExit(f"{args.matcnn} missing: run `cargo build --release` first")
    nets = [n for n in args.nets.split(",") if n]
    net_batches = {k: list(v) for k, v in DEFAULT_NET_BATCHES.items()}
    for o in args.net_batches:
        k, v = o.split("=", 1)
        net_batches[k] = ints(v)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))

    args.loadavg = os.getloadavg()
    t0 = time.time()
    fwd = []
    if not args.no_forward:
        for n in nets:
            fwd += forward(args, n, net_batches.get(n, ints(args.batches)), args.matcnn, env)
    loads = []
    if not args.no_load:
        for n in nets:
            if n in GENERATED:
                for f in [n, f"{n}_uncompressed"]:
                    loads.append(load(args, f, args.matcnn, env))
    log(f"done in {time.time() - t0:.0f} s")

    md = args.markdown
    print(("Machine: " if md else "# ") + machine(args, args.matcnn) + "\n")
    if fwd:
        print(("**Forward pass** " if md else "# forward pass, ")
              + f"median ms per batch over {args.rounds} interleaved rounds "
                "(ratio = matcnn / onnxruntime; > 1: matcnn slower)\n")
        print(table(["network", "input (CxHxW)", "batch", "runs", "matcnn ms", "ORT ms",
                     "matcnn/ORT"],
                    [[r["net"], r["input"], str(r["batch"]), str(r["runs"]),
                      f"{r['matcnn_ms']:.2f}", f"{r['ort_ms']:.2f}", f"{r['ratio']:.2f}"]
                     for r in fwd], md))
        print()
    if loads:
        print(("**Loading** " if md else "# loading, ")
              + f"median of {args.load_rounds} interleaved runs: matcnn = read + import + build "
                "(`bench --load-only`), scipy = `loadmat` only; wall = whole process "
                "(`/usr/bin/time -v`), in-process = the load call alone\n")
        print(table(["file", "file MB", "weights MB", "matcnn wall s", "matcnn in-process ms",
                     "matcnn peak RSS MB", "scipy wall s", "loadmat in-process ms",
                     "scipy peak RSS MB", "matcnn RSS / weights"],
                    [[r["file"], f"{r['file_mb']:.1f}", f"{r['weights_mb']:.1f}",
                      f"{r['matcnn_wall_s']:.2f}", f"{r['matcnn_load_ms']:.0f}",
                      f"{r['matcnn_rss_mb']:.0f}", f"{r['scipy_wall_s']:.2f}",
                      f"{r['scipy_loadmat_ms']:.0f}", f"{r['scipy_rss_mb']:.0f}",
                      f"{r['rss_over_weights']:.2f}"] for r in loads], md))
        print()


if __name__ == "__main__":
    main()
