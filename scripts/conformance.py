#!/usr/bin/env python3
"""The Python side of tests/conformance.rs: every row's exports checked in one process.

    conformance.py MANIFEST.json

MANIFEST is a list of rows: {name, onnx, input, reference, tol, pytorch (a folder or null),
classes}. For each row:

- onnx: onnx.checker.check_model(full_check=True), the interface matcnn promises (one input
  "input", one output "output", symbolic batch, `classes` metadata when the row has classes), and
  onnxruntime on INPUT equal to REFERENCE: max |difference| <= tol * max(1, max |REFERENCE|);
- torch: with torch installed, model.py's build_model() on INPUT equal to REFERENCE the same way.
  Without torch, model.py is run against a stand-in `torch` that only records the parameters and
  buffers each module declares (shapes from PyTorch's documentation), and the state dict in
  weights.safetensors and in model.pt (read with check_weights.read_pt) must hold exactly those
  names and shapes.

Prints `ROW {json}` per row: {"name", "onnx": {"status", "detail"}, "torch": {...}} with status
pass / fail / skip. Exits 0 unless the manifest cannot be read (failures are the caller's).
"""

import importlib.util
import json
import os
import sys
import traceback
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def compare(y, ref, tol):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if y.size != ref.size:
        return "fail", f"{y.size} values, reference has {ref.size}"
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    d = float(np.max(np.abs(y - ref))) if ref.size else 0.0
    if not np.all(np.isfinite(y)) or d > tol * scale:
        return "fail", f"max |diff| {d:.3e} > {tol * scale:.1e}"
    return "pass", f"{d:.1e}"


def check_onnx(row, x, ref):
    import onnx
    import onnxruntime as ort

    model = onnx.load(row["onnx"])
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    inits = {t.name for t in g.initializer}
    ins = [i.name for i in g.input if i.name not in inits]
    if ins != ["input"] or [o.name for o in g.output] != ["output"]:
        return "fail", f"inputs {ins} / outputs {[o.name for o in g.output]}"
    for v in list(g.input[:1]) + list(g.output):
        dim = v.type.tensor_type.shape.dim
        if not dim or not dim[0].dim_param:
            return "fail", f"{v.name} has no symbolic batch dimension"
    if row["classes"]:
        meta = {p.key: p.value for p in model.metadata_props}
        if len(json.loads(meta.get("classes", "[]"))) != row["classes"]:
            return "fail", f"metadata classes {meta.get('classes')}"
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x})[0]
    return compare(y, ref, row["tol"])


# ---- a stand-in torch that records declared parameter shapes ----


class FakeTensor:
    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)


def _shape(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Module:
    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._modules[name] = value
        if isinstance(value, Parameter):
            self._params[name] = ("float32", value.shape)
        object.__setattr__(self, name, value)

    def register_buffer(self, name, t):
        self._buffers[name] = ("float32", t.shape)
        object.__setattr__(self, name, t)

    def _param(self, name, shape, dtype="float32"):
        self._params[name] = (dtype, tuple(int(s) for s in shape))

    def declared(self, prefix=""):
        out = {}
        for k, v in list(self._params.items()) + list(self._buffers.items()):
            out[prefix + k] = v
        for k, m in self._modules.items():
            out.update(m.declared(prefix + k + "."))
        return out

    def eval(self):
        return self

    def load_state_dict(self, *a, **k):
        raise RuntimeError("the stand-in torch holds no values")


class Conv2d(Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, **kw):
        super().__init__()
        self._param("weight", (cout, cin // groups) + _pair(kernel_size))
        if bias:
            self._param("bias", (cout,))


class ConvTranspose2d(Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True, **kw):
        super().__init__()
        self._param("weight", (cin, cout // groups) + _pair(kernel_size))
        if bias:
            self._param("bias", (cout,))


class Linear(Module):
    def __init__(self, cin, cout, bias=True, **kw):
        super().__init__()
        self._param("weight", (cout, cin))
        if bias:
            self._param("bias", (cout,))


class _BatchNorm(Module):
    def __init__(self, c, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, **kw):
        super().__init__()
        if affine:
            self._param("weight", (c,))
            self._param("bias", (c,))
        if track_running_stats:
            self._buffers["running_mean"] = ("float32", (c,))
            self._buffers["running_var"] = ("float32", (c,))
            self._buffers["num_batches_tracked"] = ("int64", ())


class GroupNorm(Module):
    def __init__(self, groups, c, eps=1e-5, affine=True, **kw):
        super().__init__()
        if affine:
            self._param("weight", (c,))
            self._param("bias", (c,))


# --- seq1d ---
class Parameter(FakeTensor):
    def __init__(self, t, requires_grad=True):
        super().__init__(t.shape)


class Conv1d(Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, **kw):
        super().__init__()
        self._param("weight", (cout, cin // groups, kernel_size))
        if bias:
            self._param("bias", (cout,))


class ConvTranspose1d(Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True, **kw):
        super().__init__()
        self._param("weight", (cin, cout // groups, kernel_size))
        if bias:
            self._param("bias", (cout,))
# --- end seq1d ---


def _rnn(gates):
    class Rnn(Module):
        def __init__(self, input_size, hidden, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                     bidirectional=False, **kw):
            super().__init__()
            for layer in range(num_layers):
                for sfx in [""] + (["_reverse"] if bidirectional else []):
                    n_in = input_size if layer == 0 else hidden * (2 if bidirectional else 1)
                    self._param(f"weight_ih_l{layer}{sfx}", (gates * hidden, n_in))
                    self._param(f"weight_hh_l{layer}{sfx}", (gates * hidden, hidden))
                    if bias:
                        self._param(f"bias_ih_l{layer}{sfx}", (gates * hidden,))
                        self._param(f"bias_hh_l{layer}{sfx}", (gates * hidden,))

    return Rnn


def fake_torch():
    torch = types.ModuleType("torch")
    nn = types.ModuleType("torch.nn")
    F = types.ModuleType("torch.nn.functional")
    torch.nn, nn.functional = nn, F
    torch.zeros = torch.ones = torch.empty = lambda *s, **k: FakeTensor(_shape(s))
    torch.no_grad = lambda: types.SimpleNamespace(__enter__=lambda *a: None, __exit__=lambda *a: None)
    known = {
        "Module": Module,
        "Conv2d": Conv2d,
        "ConvTranspose2d": ConvTranspose2d,
        "Linear": Linear,
        "BatchNorm1d": _BatchNorm,
        "BatchNorm2d": _BatchNorm,
        "GroupNorm": GroupNorm,
        "LSTM": _rnn(4),
        "GRU": _rnn(3),
        "Conv1d": Conv1d,
        "ConvTranspose1d": ConvTranspose1d,
        "Parameter": Parameter,
    }
    for k, v in known.items():
        setattr(nn, k, v)

    def parameterless(name):
        # Activations, pooling, dropout, softmax, LRN...: no parameters or buffers.
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (Module,), {})

    nn.__getattr__ = parameterless
    F.__getattr__ = lambda name: (lambda *a, **k: None)
    return {"torch": torch, "torch.nn": nn, "torch.nn.functional": F}


def load_model_py(folder, modules=None):
    saved = {k: sys.modules.get(k) for k in (modules or {})}
    sys.modules.update(modules or {})
    try:
        spec = importlib.util.spec_from_file_location(f"conformance_model_{abs(hash(folder))}",
                                                      os.path.join(folder, "model.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def check_torch(row, x, ref, torch):
    folder = row["pytorch"]
    if torch is not None:
        mod = load_model_py(folder)
        with torch.no_grad():
            y = mod.build_model()(torch.from_numpy(x)).numpy()
        status, detail = compare(y, ref, row["tol"])
        return status, f"torch {detail}"
    # Without torch: names and shapes declared by model.py vs the two state-dict files.
    from safetensors.numpy import load_file

    sys.path.insert(0, HERE)
    from check_weights import read_pt

    mod = load_model_py(folder, fake_torch())
    declared = mod.build_model(weights=False).declared()
    st = load_file(os.path.join(folder, "weights.safetensors"))
    pt, _ = read_pt(os.path.join(folder, "model.pt"))
    for what, sd in [("weights.safetensors", st), ("model.pt", pt)]:
        got = {k: (str(np.asarray(v).dtype), tuple(np.asarray(v).shape)) for k, v in sd.items()}
        if got != declared:
            extra = sorted(set(got) - set(declared))
            missing = sorted(set(declared) - set(got))
            differ = sorted(k for k in set(got) & set(declared) if got[k] != declared[k])
            return "fail", (f"{what} vs model.py: extra {extra}, missing {missing}, "
                            f"differ {[(k, got[k], declared[k]) for k in differ]}")
        for k, v in sd.items():
            if not np.all(np.isfinite(np.asarray(v))):
                return "fail", f"{what}: {k} is not finite"
    if any(not np.array_equal(np.asarray(st[k]), np.asarray(pt[k])) for k in st):
        return "fail", "weights.safetensors and model.pt differ"
    return "pass", f"no torch: {len(declared)} tensors as model.py declares"


def guarded(f, *args):
    try:
        status, detail = f(*args)
    except Exception as e:  # noqa: BLE001 -- reported per row
        tb = traceback.format_exc().strip().splitlines()
        status, detail = "fail", f"{type(e).__name__}: {e} ({tb[-3].strip() if len(tb) > 2 else ''})"
    return {"status": status, "detail": detail}


def main():
    rows = json.load(open(sys.argv[1]))
    try:
        import torch
    except ImportError:
        torch = None
    for row in rows:
        x = np.load(row["input"]).astype(np.float32)
        ref = np.load(row["reference"]).astype(np.float64)
        out = {"name": row["name"], "onnx": guarded(check_onnx, row, x, ref)}
        if row["pytorch"]:
            out["torch"] = guarded(check_torch, row, x, ref, torch)
        print("ROW " + json.dumps(out), flush=True)


# --- attn ---
# The transformer layers' helper modules declare their weights with nn.Parameter: the stand-in
# torch records those as parameters. With torch installed, the self-attention rows run model.py,
# whose SelfAttention is F.scaled_dot_product_attention (is_causal for AttentionMask 'causal'),
# against the scalar reference; `sdpa_reference` below checks torch's op itself against numpy.


class FakeParameter(FakeTensor):
    pass


_module_setattr = Module.__setattr__


def _setattr_with_parameters(self, name, value):
    if isinstance(value, FakeParameter):
        self._params[name] = ("float32", value.shape)
    _module_setattr(self, name, value)


Module.__setattr__ = _setattr_with_parameters
_fake_torch_without_parameters = fake_torch


def fake_torch():  # noqa: F811 -- extends the stand-in above with nn.Parameter
    mods = _fake_torch_without_parameters()
    mods["torch.nn"].Parameter = lambda t, requires_grad=True: FakeParameter(t.shape)
    return mods


def sdpa_reference(torch):
    """F.scaled_dot_product_attention with and without a causal mask against numpy."""
    if torch is None:
        return "skip", "torch is not installed"
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    worst = 0.0
    for causal in (False, True):
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        if causal:
            s = s + np.triu(np.full((5, 5), -np.inf), 1)
        w = np.exp(s - s.max(-1, keepdims=True))
        ref = (w / w.sum(-1, keepdims=True)) @ v
        got = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(a) for a in (q, k, v)), is_causal=causal).numpy()
        worst = max(worst, float(np.abs(got - ref).max()))
    return ("pass" if worst <= 1e-5 else "fail"), f"max |torch - numpy| {worst:.2e}"


if __name__ == "__main__":
    main()
