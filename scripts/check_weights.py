#!/usr/bin/env python3
"""Reads a PyTorch export's weights back without torch and compares them with reference tensors.

    check_weights.py EXPORT_DIR REFERENCE_DIR

EXPORT_DIR holds weights.safetensors and model.pt (written by `matcnn export --format pytorch`);
REFERENCE_DIR holds one `<key>.npy` per state-dict entry, written by the test from the network
description. weights.safetensors is read with safetensors.numpy; model.pt with zipfile and a
pickle.Unpickler that resolves torch's globals and persistent storage ids itself (the way
torch.load would). Every tensor of both files must equal its reference exactly (same keys, dtype,
shape and values). Prints `RESULT {json}`, exits 1 on any mismatch.
"""

import collections
import json
import os
import pickle
import sys
import zipfile

import numpy as np
from safetensors.numpy import load_file


class _Storage:
    """Stands for torch.FloatStorage / torch.LongStorage."""

    def __init__(self, dtype):
        self.dtype = dtype


STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, *rest):
    """torch._utils._rebuild_tensor_v2 over a numpy storage."""
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
    ).copy()


def read_pt(path):
    """The state dict in a torch.save zip file, as numpy arrays."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected one */data.pkl, found {pkl}")
        root = pkl[0][: -len("data.pkl")]
        version = z.read(root + "version").decode().strip()
        byteorder = z.read(root + "byteorder").decode() if root + "byteorder" in names else "little"
        info = {n: z.getinfo(n) for n in names}
        if any(i.compress_type != zipfile.ZIP_STORED for i in info.values()):
            raise ValueError("entries must be stored, not compressed")

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild_tensor_v2
                if module == "torch" and name in STORAGES:
                    return _Storage(np.dtype(STORAGES[name]))
                raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

            def persistent_load(self, pid):
                kind, storage_type, key, location, numel = pid
                if kind != "storage" or location != "cpu":
                    raise pickle.UnpicklingError(f"unexpected persistent id {pid}")
                raw = z.read(f"{root}data/{key}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                arr = np.frombuffer(raw, dtype=dtype)
                if arr.size != numel:
                    raise pickle.UnpicklingError(f"storage {key}: {arr.size} values, expected {numel}")
                return arr

        with z.open(pkl[0]) as f:
            sd = Unpickler(f).load()
    return sd, {"version": version, "byteorder": byteorder, "root": root.rstrip("/")}


def main():
    export_dir, ref_dir = sys.argv[1], sys.argv[2]
    refs = {f[:-4]: np.load(os.path.join(ref_dir, f)) for f in os.listdir(ref_dir) if f.endswith(".npy")}
    failures = []
    st = load_file(os.path.join(export_dir, "weights.safetensors"))
    pt, pt_info = read_pt(os.path.join(export_dir, "model.pt"))
    if not isinstance(pt, collections.OrderedDict):
        failures.append(f"model.pt holds a {type(pt).__name__}, not an OrderedDict")
    if pt_info["version"] != "3":
        failures.append(f"model.pt version {pt_info['version']}")
    for what, sd in [("weights.safetensors", st), ("model.pt", pt)]:
        if set(sd) != set(refs):
            failures.append(
                f"{what}: keys differ: extra {sorted(set(sd) - set(refs))}, missing {sorted(set(refs) - set(sd))}"
            )
        for k in sorted(set(sd) & set(refs)):
            a, r = np.asarray(sd[k]), refs[k]
            if a.dtype != r.dtype or a.shape != r.shape or not np.array_equal(a, r):
                failures.append(f"{what}: {k}: {a.dtype}{list(a.shape)} differs from {r.dtype}{list(r.shape)}")
    print("RESULT " + json.dumps({"tensors": len(refs), "values": int(sum(r.size for r in refs.values())), "pt": pt_info}))
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
