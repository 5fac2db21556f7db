#!/usr/bin/env python3
"""The fine-tuning task of tests/finetune_defaults.rs in PyTorch, on matcnn's PyTorch export.

    finetune_pytorch.py EXPORT_DIR [--fixtures DIR] [--seeds 1,2,3] [--epochs 2]
                        [--new-layer-lr-factor 1] [--threads 2] [--lr 0.01]
                        [--batch-size 128] [--freeze-bn]

EXPORT_DIR is `matcnn export --format pytorch --output EXPORT_DIR` of the demo network. The task:
MNIST digits -> "digit < 5" / ">= 5"; the first 1,500 images of
chandrachapa-mnist-bn/MNIST_Validation.mat (the first 2,000 MNIST training images, labels from
train-labels-idx1-ubyte) train, the next 500 score; pixels are round(255 x), as the PNGs the
test writes. The recipe is MATLAB's trainingOptions defaults: sgdm, InitialLearnRate 0.01,
momentum 0.9, L2Regularization 1e-4 (on weights and batch-norm scale/offset, L2Factor 1; biases
0), MiniBatchSize 128, Shuffle 'once', the new last layer Glorot-uniform with zero bias and
learn-rate factor --new-layer-lr-factor; batch norm in training mode (MeanDecay 0.1).
Prints one line per seed and `RESULT {json}` with the mean held-out accuracy. Exits 0 with
"skipped: torch not installed" without torch.
"""

import argparse
import importlib.util
import json
import math
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError:
    print("skipped: torch not installed")
    sys.exit(0)


def load_data(fixtures):
    import scipy.io

    d = os.path.join(fixtures, "chandrachapa-mnist-bn")
    x = scipy.io.loadmat(os.path.join(d, "MNIST_Validation.mat"))["img_V"]
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "rb") as f:
        labels = np.frombuffer(f.read()[8 : 8 + 2000], dtype=np.uint8)
    x = np.round(np.clip(x[:, :, 0, :], 0, 1) * 255).astype(np.float32)  # [28, 28, N]
    x = np.transpose(x, (2, 0, 1))[:, None]  # [N, 1, 28, 28]
    y = (labels >= 5).astype(np.int64)
    return (x[:1500], y[:1500]), (x[1500:2000], y[1500:2000])


def build(export_dir):
    spec = importlib.util.spec_from_file_location(
        "matcnn_export_model", os.path.join(export_dir, "model.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_model()


def last_linear(model):
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name


def run(export_dir, train, test, seed, epochs, factor, batch=128, lr=0.01, l2=1e-4, freeze_bn=False):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build(export_dir)
    fc_name = last_linear(model)
    old = getattr(model, fc_name)
    new = nn.Linear(old.in_features, 2)
    nn.init.xavier_uniform_(new.weight)  # MATLAB's Glorot
    nn.init.zeros_(new.bias)
    setattr(model, fc_name, new)
    if hasattr(model, "softmax"):
        model.softmax = nn.Identity()  # logits for the cross-entropy
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for p in m.parameters():
                    p.requires_grad_(False)
    decay, no_decay, new_params = [], [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if n.startswith(fc_name + "."):
            new_params.append((n, p))
        elif n.endswith("bias") and "batchnorm" not in n:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": l2},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        {"params": [p for n, p in new_params if n.endswith("weight")], "lr": lr * factor, "weight_decay": l2},
        {"params": [p for n, p in new_params if n.endswith("bias")], "lr": lr * factor, "weight_decay": 0.0},
    ]
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9)
    xtr, ytr = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    order = rng.permutation(len(ytr))  # Shuffle 'once'
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(epochs):
        model.train()
        if freeze_bn:  # running statistics as stored
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        tot = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        losses.append(tot / len(order))
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(test[0])).argmax(1).numpy()
    return float((pred == test[1]).mean()), losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "..", "shared", "fixtures"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--new-layer-lr-factor", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--freeze-bn", action="store_true", help="batch norm kept as stored")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_data(args.fixtures)
    accs = []
    for s in [int(v) for v in args.seeds.split(",")]:
        acc, losses = run(
            args.export_dir, train, test, s, args.epochs, args.new_layer_lr_factor,
            batch=args.batch_size, lr=args.lr, freeze_bn=args.freeze_bn,
        )
        accs.append(acc)
        print(f"seed {s}: held-out accuracy {acc:.4f}, epoch losses {[round(v, 4) for v in losses]}")
    mean = sum(accs) / len(accs)
    print(f"mean {mean:.4f}")
    recipe = {"lr": args.lr, "batch": args.batch_size, "factor": args.new_layer_lr_factor, "freeze_bn": args.freeze_bn}
    print("RESULT " + json.dumps({"accuracies": accs, "mean": mean, "recipe": recipe}))
    return 0 if math.isfinite(mean) else 1


if __name__ == "__main__":
    sys.exit(main())
