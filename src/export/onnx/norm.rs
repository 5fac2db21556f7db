//! Batch normalization, group normalization, local response normalization.

use super::graph::{Ctx, Graph, a_float, a_int, a_ints};
use crate::export::{ExportError, bn_epsilon, param, values};
use crate::net::layer::{BatchNorm, GroupNorm, Lrn};

pub(super) fn batch_norm(g: &mut Graph, cx: &Ctx, b: &BatchNorm) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    let s = param(l, &b.scale, "Scale")?;
    let o = param(l, &b.offset, "Offset")?;
    let m = values(l, b.mean.as_ref(), "TrainedMean")?;
    let v = values(l, b.variance.as_ref(), "TrainedVariance")?;
    let s = g.f32_init(&format!("{name}.weight"), &s.shape, &s.data);
    let o = g.f32_init(&format!("{name}.bias"), &o.shape, &o.data);
    let m = g.f32_init(&format!("{name}.running_mean"), &m.shape, &m.data);
    let v = g.f32_init(&format!("{name}.running_var"), &v.shape, &v.data);
    g.node(
        "BatchNormalization",
        name,
        &[&x, &s, &o, &m, &v],
        out,
        vec![a_float("epsilon", bn_epsilon(b))],
    );
    Ok(())
}

pub(super) fn group_norm(g: &mut Graph, cx: &Ctx, gn: &GroupNorm) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    // Group normalization without GroupNormalization (opset 21+ only): normalize each
    // group as one instance, then the per-channel affine transform.
    let x = cx.arg(g, 0, true);
    let s = param(l, &gn.scale, "Scale")?;
    let o = param(l, &gn.offset, "Offset")?;
    let c = gn.channels;
    let groups = gn.groups.max(1);
    let gshape = g.i64_init(
        &format!("{name}.group_shape"),
        &[3],
        &[0, groups as i64, -1],
    );
    let grouped = format!("{name}/grouped");
    g.node(
        "Reshape",
        &format!("{name}/group"),
        &[&x, &gshape],
        &grouped,
        vec![],
    );
    let ones = g.f32_init(&format!("{name}.ones"), &[groups], &vec![1.0; groups]);
    let zeros = g.f32_init(&format!("{name}.zeros"), &[groups], &vec![0.0; groups]);
    let normed = format!("{name}/normalized");
    g.node(
        "InstanceNormalization",
        &format!("{name}/instancenorm"),
        &[&grouped, &ones, &zeros],
        &normed,
        vec![a_float("epsilon", gn.epsilon)],
    );
    let shape = format!("{name}/shape");
    g.node("Shape", &format!("{name}/shape"), &[&x], &shape, vec![]);
    let back = format!("{name}/ungrouped");
    g.node(
        "Reshape",
        &format!("{name}/ungroup"),
        &[&normed, &shape],
        &back,
        vec![],
    );
    let w = g.f32_init(&format!("{name}.weight"), &[c, 1, 1], &s.data);
    let b = g.f32_init(&format!("{name}.bias"), &[c, 1, 1], &o.data);
    let scaled = format!("{name}/scaled");
    g.node(
        "Mul",
        &format!("{name}/scale"),
        &[&back, &w],
        &scaled,
        vec![],
    );
    g.node("Add", name, &[&scaled, &b], out, vec![]);
    Ok(())
}

pub(super) fn lrn(g: &mut Graph, cx: &Ctx, n: &Lrn) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    // MATLAB's formula x / (k + alpha * sum_window(x^2) / n)^beta is ONNX's LRN, and
    // ONNX's window [c - floor((n-1)/2), c + ceil((n-1)/2)] is MATLAB's for even n too.
    let x = cx.arg(g, 0, true);
    if n.window % 2 == 1 {
        g.node(
            "LRN",
            name,
            &[&x],
            out,
            vec![
                a_int("size", n.window as i64),
                a_float("alpha", n.alpha),
                a_float("beta", n.beta),
                a_float("bias", n.k),
            ],
        );
    } else {
        // onnxruntime implements odd sizes only: the same formula from basic ops, the
        // window mean as a 3-D average pool over [N, 1, C, H, W].
        let t = |s: &str| format!("{name}/{s}");
        let before = (n.window - 1) / 2;
        let after = n.window / 2;
        let axis1 = g.i64_init(&t("axis1"), &[1], &[1]);
        let pads = g.i64_init(
            &t("channel_pads"),
            &[10],
            &[0, 0, before as i64, 0, 0, 0, 0, after as i64, 0, 0],
        );
        let alpha = g.scalar(n.alpha as f32);
        let k = g.scalar(n.k as f32);
        let beta = g.scalar(n.beta as f32);
        g.node("Mul", &t("square"), &[&x, &x], &t("square"), vec![]);
        g.node(
            "Unsqueeze",
            &t("unsqueeze"),
            &[&t("square"), &axis1],
            &t("unsqueeze"),
            vec![],
        );
        g.node(
            "Pad",
            &t("pad"),
            &[&t("unsqueeze"), &pads],
            &t("pad"),
            vec![],
        );
        g.node(
            "AveragePool",
            &t("window_mean"),
            &[&t("pad")],
            &t("window_mean"),
            vec![
                a_ints("kernel_shape", &[n.window as i64, 1, 1]),
                a_ints("strides", &[1, 1, 1]),
            ],
        );
        g.node(
            "Squeeze",
            &t("squeeze"),
            &[&t("window_mean"), &axis1],
            &t("squeeze"),
            vec![],
        );
        g.node(
            "Mul",
            &t("scaled"),
            &[&t("squeeze"), &alpha],
            &t("scaled"),
            vec![],
        );
        g.node(
            "Add",
            &t("shifted"),
            &[&t("scaled"), &k],
            &t("shifted"),
            vec![],
        );
        g.node("Pow", &t("pow"), &[&t("shifted"), &beta], &t("pow"), vec![]);
        g.node("Div", name, &[&x, &t("pow")], out, vec![]);
    }
    Ok(())
}
