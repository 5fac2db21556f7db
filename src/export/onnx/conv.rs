//! Convolution, transposed convolution, fully connected.

use super::graph::{Ctx, Graph, a_int, a_ints, a_str, ints, onnx_pads};
use crate::export::{ExportError, pads, param};
use crate::net::layer::{Conv1d, ConvTranspose1d};
use crate::net::layer::{Conv2d, ConvTranspose2d, FullyConnected};

pub(super) fn conv2d(g: &mut Graph, cx: &Ctx, c: &Conv2d) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, true);
    let wt = param(l, &c.weights, "Weights")?;
    let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
    let mut ins = vec![x, w];
    if c.bias.is_some() {
        let b = param(l, &c.bias, "Bias")?;
        ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    g.node(
        "Conv",
        name,
        &ins,
        out,
        vec![
            a_ints("kernel_shape", &ints(c.filter)),
            a_ints("strides", &ints(c.stride)),
            a_ints("dilations", &ints(c.dilation)),
            a_ints("pads", &onnx_pads(pads(&c.padding))),
            a_int("group", c.groups as i64),
        ],
    );
    Ok(())
}

pub(super) fn conv_transpose2d(
    g: &mut Graph,
    cx: &Ctx,
    c: &ConvTranspose2d,
) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, true);
    let wt = param(l, &c.weights, "Weights")?;
    let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
    let mut ins = vec![x, w];
    if c.bias.is_some() {
        let b = param(l, &c.bias, "Bias")?;
        ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    let crop = pads(&c.cropping);
    let attrs = vec![
        a_ints("kernel_shape", &ints(c.filter)),
        a_ints("strides", &ints(c.stride)),
        a_int("group", c.groups as i64),
    ];
    if crop.top + crop.bottom + crop.left + crop.right == 0 {
        g.node("ConvTranspose", name, &ins, out, attrs);
    } else {
        // MATLAB's cropping as a Slice of the full transposed convolution.
        let full = format!("{name}/uncropped");
        g.node(
            "ConvTranspose",
            &format!("{name}/convtranspose"),
            &ins,
            &full,
            attrs,
        );
        let end = |p: usize| if p == 0 { i64::MAX } else { -(p as i64) };
        let starts = g.i64_init(
            &format!("{name}.crop_starts"),
            &[2],
            &[crop.top as i64, crop.left as i64],
        );
        let ends = g.i64_init(
            &format!("{name}.crop_ends"),
            &[2],
            &[end(crop.bottom), end(crop.right)],
        );
        let axes = g.axes_2_3();
        g.node("Slice", name, &[&full, &starts, &ends, &axes], out, vec![]);
    }
    Ok(())
}

pub(super) fn fully_connected(
    g: &mut Graph,
    cx: &Ctx,
    f: &FullyConnected,
) -> Result<(), ExportError> {
    if cx.plan.in_rank(cx.i, 0) == 3 {
        fully_connected_steps(g, cx, f)
    } else {
        fully_connected_flat(g, cx, f)
    }
}

/// A fully connected layer on `[N, C, T]`, applied per time step.
fn fully_connected_steps(g: &mut Graph, cx: &Ctx, f: &FullyConnected) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    // Per time step: [N, C, T] → [N, T, C] · W^T + b → [N, K, T].
    let x = cx.arg(g, 0, false);
    let wt = param(l, &f.weights, "Weights")?;
    let (k, c) = (wt.shape[0], wt.shape.get(1).copied().unwrap_or(0));
    let mut wtt = vec![0.0f32; k * c];
    for r in 0..k {
        for j in 0..c {
            wtt[j * k + r] = wt.data[r * c + j];
        }
    }
    let w = g.f32_init(&format!("{name}.weight_t"), &[c, k], &wtt);
    let t = |s: &str| format!("{name}/{s}");
    g.node(
        "Transpose",
        &t("to_ntc"),
        &[&x],
        &t("ntc"),
        vec![a_ints("perm", &[0, 2, 1])],
    );
    g.node("MatMul", &t("matmul"), &[&t("ntc"), &w], &t("ntk"), vec![]);
    let mut y = t("ntk");
    if f.bias.is_some() {
        let b = param(l, &f.bias, "Bias")?;
        let b = g.f32_init(&format!("{name}.bias"), &b.shape, &b.data);
        g.node("Add", &t("add"), &[&y, &b], &t("biased"), vec![]);
        y = t("biased");
    }
    g.node(
        "Transpose",
        name,
        &[&y],
        out,
        vec![a_ints("perm", &[0, 2, 1])],
    );
    Ok(())
}

/// A fully connected layer on `[N, C]` or `[N, C, H, W]`.
fn fully_connected_flat(g: &mut Graph, cx: &Ctx, f: &FullyConnected) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let mut x = cx.arg(g, 0, false);
    if cx.plan.in_rank(cx.i, 0) == 4 {
        // The canonical weight columns follow an NCHW flatten.
        let flat = format!("{name}/flat");
        g.node(
            "Flatten",
            &format!("{name}/flatten"),
            &[&x],
            &flat,
            vec![a_int("axis", 1)],
        );
        x = flat;
    }
    let wt = param(l, &f.weights, "Weights")?;
    let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
    let mut ins = vec![x, w];
    if f.bias.is_some() {
        let b = param(l, &f.bias, "Bias")?;
        ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    g.node("Gemm", name, &ins, out, vec![a_int("transB", 1)]);
    Ok(())
}

/// `Conv` on `[N, C, T]`; 'same' as `auto_pad = SAME_UPPER` (MATLAB's split, for every `T`).
pub(super) fn conv1d(g: &mut Graph, cx: &Ctx, c: &Conv1d) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    let wt = param(l, &c.weights, "Weights")?;
    let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
    let mut ins = vec![x, w];
    if c.bias.is_some() {
        let b = param(l, &c.bias, "Bias")?;
        ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
    }
    let mut attrs = vec![
        a_ints("kernel_shape", &[c.filter as i64]),
        a_ints("strides", &[c.stride as i64]),
        a_ints("dilations", &[c.dilation as i64]),
        a_int("group", 1),
    ];
    match c.padding.static_pads(c.filter, c.stride, c.dilation) {
        Some([a, b]) => attrs.push(a_ints("pads", &[a as i64, b as i64])),
        // onnxruntime refuses auto_pad with dilation: the pads computed from T in the graph.
        None if c.dilation > 1 => {
            let window = (c.filter.max(1) - 1) * c.dilation + 1;
            ins[0] = same_pad_1d(g, name, &ins[0], c.stride, window);
        }
        // Pads that depend on T: MATLAB's 'same' split is ONNX's SAME_UPPER.
        None => attrs.push(a_str("auto_pad", "SAME_UPPER")),
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    g.node("Conv", name, &ins, out, attrs);
    Ok(())
}

/// `ConvTranspose` on `[N, C, T]`, then MATLAB's cropping as a `Slice` along time.
pub(super) fn conv_transpose1d(
    g: &mut Graph,
    cx: &Ctx,
    c: &ConvTranspose1d,
) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    let wt = param(l, &c.weights, "Weights")?;
    let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
    let mut ins = vec![x, w];
    if c.bias.is_some() {
        let b = param(l, &c.bias, "Bias")?;
        ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    let attrs = vec![
        a_ints("kernel_shape", &[c.filter as i64]),
        a_ints("strides", &[c.stride as i64]),
    ];
    let [a, b] = c.cropping;
    if a + b == 0 {
        g.node("ConvTranspose", name, &ins, out, attrs);
        return Ok(());
    }
    let full = format!("{name}/uncropped");
    g.node(
        "ConvTranspose",
        &format!("{name}/convtranspose"),
        &ins,
        &full,
        attrs,
    );
    let end = if b == 0 { i64::MAX } else { -(b as i64) };
    let starts = g.i64_init(&format!("{name}.crop_starts"), &[1], &[a as i64]);
    let ends = g.i64_init(&format!("{name}.crop_ends"), &[1], &[end]);
    let axes = g.i64_init(&format!("{name}.crop_axes"), &[1], &[2]);
    g.node("Slice", name, &[&full, &starts, &ends, &axes], out, vec![]);
    Ok(())
}

/// `x [N, C, T]` zero-padded along time as MATLAB's 'same' does for stride `s` and a (dilated)
/// window of `window` steps, the pads computed from `T` in the graph:
/// `total = max((ceil(T / s) - 1) s + window - T, 0)`, `floor(total / 2)` before, the rest after.
fn same_pad_1d(g: &mut Graph, name: &str, x: &str, s: usize, window: usize) -> String {
    let t = |n: &str| format!("{name}/same_{n}");
    let i = |g: &mut Graph, n: &str, v: i64| g.i64_init(&format!("{name}.same_{n}"), &[1], &[v]);
    let (two, s_, sm1, win, zero) = (
        i(g, "two", 2),
        i(g, "stride", s as i64),
        i(g, "stride_minus_1", s as i64 - 1),
        i(g, "window", window as i64),
        i(g, "zero", 0),
    );
    let (start, end) = (i(g, "start", 2), i(g, "end", 3));
    let zeros2 = g.i64_init(&format!("{name}.same_zeros2"), &[2], &[0, 0]);
    g.node("Shape", &t("shape"), &[x], &t("shape"), vec![]);
    g.node(
        "Slice",
        &t("t"),
        &[&t("shape"), &start, &end],
        &t("t"),
        vec![],
    );
    // ceil(T / s) = (T + s - 1) / s (integer division of non-negative values).
    g.node("Add", &t("t_plus"), &[&t("t"), &sm1], &t("t_plus"), vec![]);
    g.node("Div", &t("out"), &[&t("t_plus"), &s_], &t("out"), vec![]);
    g.node("Mul", &t("span"), &[&t("out"), &s_], &t("span"), vec![]);
    g.node(
        "Sub",
        &t("span_less"),
        &[&t("span"), &s_],
        &t("span_less"),
        vec![],
    );
    g.node(
        "Add",
        &t("need"),
        &[&t("span_less"), &win],
        &t("need"),
        vec![],
    );
    g.node(
        "Sub",
        &t("diff"),
        &[&t("need"), &t("t")],
        &t("diff"),
        vec![],
    );
    g.node(
        "Max",
        &t("total"),
        &[&t("diff"), &zero],
        &t("total"),
        vec![],
    );
    g.node("Div", &t("left"), &[&t("total"), &two], &t("left"), vec![]);
    g.node(
        "Sub",
        &t("right"),
        &[&t("total"), &t("left")],
        &t("right"),
        vec![],
    );
    g.node(
        "Concat",
        &t("pads"),
        &[&zeros2, &t("left"), &zeros2, &t("right")],
        &t("pads"),
        vec![a_int("axis", 0)],
    );
    g.node("Pad", &t("pad"), &[x, &t("pads")], &t("padded"), vec![]);
    t("padded")
}
