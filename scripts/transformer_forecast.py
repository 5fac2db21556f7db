#!/usr/bin/env python3
"""One-step-ahead forecasts of mw-transformer-ts's stored series with matcnn's ONNX export.

    matcnn export --model transformer_demo.mat --format onnx --output net.onnx
    transformer_forecast.py net.onnx SERIES.npy DAYS.npy [--window 30] [--variants]

SERIES.npy is the [T, 3] price series and DAYS.npy the day of each row (days since 1970);
tests/transformer.rs writes both (`fixture_forecasts_the_series`). Like the MathWorks demo, the
series is standardized with the mean and standard deviation (N-1) of the rows before 2021, each
window of `--window` days predicts the next day, and the prediction is mapped back to prices.
Prints the RMSE of onnxruntime's forecasts and of the naive forecast (tomorrow = today), over
all windows and after 2021-01-01.

--variants also recomputes the network in numpy from the ONNX initializers with other readings
of MATLAB's self-attention (scale 1/sqrt(all key channels) instead of per head; heads taken as
interleaved channels instead of contiguous blocks; softmax over queries instead of keys), to
show how much the forecasts depend on them.
"""

import argparse

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

SPLIT_DAY = 18628  # 2021-01-01


def rmse(pred, actual):
    return np.sqrt(((pred - actual) ** 2).mean(axis=0))


def windows(z, ends, w):
    return np.stack([z[e - w:e].T for e in ends]).astype(np.float32)  # [N, 3, w]


def softmax(s, axis):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def numpy_net(inits, x, scale_all=False, interleaved=False, over_queries=False):
    """The demo network (pos-emb + add, 2 self-attention, last step, fc) in float64."""
    n, c, t = x.shape
    h = x + inits["pos-emb.weight"][:, :, :t]
    for name, causal in (("selfattention_1", True), ("selfattention_2", False)):
        g = lambda k: inits[f"{name}.{k}"].astype(np.float64)  # noqa: E731
        xt = h.transpose(0, 2, 1)
        q = xt @ g("query_weight_t") + g("query_bias")
        k = xt @ g("key_weight_t") + g("key_bias")
        v = xt @ g("value_weight_t") + g("value_bias")
        heads = 3

        def split(a):
            kc = a.shape[-1]
            if interleaved:
                return a.reshape(n, t, kc // heads, heads).transpose(0, 3, 1, 2)
            return a.reshape(n, t, heads, kc // heads).transpose(0, 2, 1, 3)

        qh, kh, vh = split(q), split(k), split(v)
        dk = q.shape[-1] if scale_all else qh.shape[-1]
        s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(dk)  # [n, heads, Tq, Tk]
        if causal:
            s = s + np.triu(np.full((t, t), -np.inf), 1)
        a = softmax(s, 2 if over_queries else 3)
        a = np.nan_to_num(a)
        o = a @ vh  # [n, heads, T, dv]
        if interleaved:
            o = o.transpose(0, 2, 3, 1).reshape(n, t, -1)
        else:
            o = o.transpose(0, 2, 1, 3).reshape(n, t, -1)
        y = o @ g("output_weight_t") + g("output_bias")
        h = y.transpose(0, 2, 1)
    last = h[:, :, -1]
    return last @ inits["fc.weight"].astype(np.float64).T + inits["fc.bias"]  # Gemm, transB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("series")
    ap.add_argument("days")
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--variants", action="store_true")
    a = ap.parse_args()
    series = np.load(a.series).astype(np.float64)
    days = np.load(a.days)
    train = days < SPLIT_DAY
    mu, sd = series[train].mean(0), series[train].std(0, ddof=1)
    z = (series - mu) / sd
    w = a.window
    ends = np.arange(w, len(series))
    test = days[ends] >= SPLIT_DAY
    x = windows(z, ends, w)
    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x})[0] * sd + mu
    actual, naive = series[ends], series[ends - 1]
    print(f"window {w}: {len(ends)} forecasts, {test.sum()} after 2021-01-01")
    print(f"RMSE all   network {rmse(y, actual).round(4)}  naive {rmse(naive, actual).round(4)}")
    print(f"RMSE 2021+ network {rmse(y[test], actual[test]).round(4)}  "
          f"naive {rmse(naive[test], actual[test]).round(4)}")
    if a.variants:
        model = onnx.load(a.onnx)
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        # The ONNX graph stores the position embedding [1, C, MaxPosition].
        for variant in ({}, {"scale_all": True}, {"interleaved": True}, {"over_queries": True}):
            yv = numpy_net(inits, x.astype(np.float64), **variant) * sd + mu
            label = ", ".join(variant) or "as matcnn computes it"
            print(f"numpy ({label}): RMSE all {rmse(yv, actual).round(4)}, "
                  f"max |numpy - onnxruntime| {np.abs(yv - y).max():.2e}")


if __name__ == "__main__":
    main()
