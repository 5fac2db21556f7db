//! Batch normalization, group normalization, local response normalization.

use super::graph::{Ctx, Graph, a_float, a_int, a_ints};
use crate::export::{ExportError, bn_epsilon, param, values};
use crate::net::layer::{BatchNorm, GroupNorm, LayerNorm, Lrn};

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

/// Layer normalization on `[N, C]`, `[N, C, T]` or `[N, C, H, W]` from basic ops (the same for
/// every opset): the values to normalize together as the last axis of a `[rows, 1, len]`
/// reshape through `InstanceNormalization`, then the per-channel affine transform.
pub(super) fn layer_norm(g: &mut Graph, cx: &Ctx, n: &LayerNorm) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let rank = cx.plan.in_rank(cx.i, 0);
    let sequence = rank == 3;
    let x = cx.arg(g, 0, false);
    let s = param(l, &n.scale, "Scale")?;
    let o = param(l, &n.offset, "Offset")?;
    let c = n.channels;
    let t = |s: &str| format!("{name}/{s}");
    let ones = g.f32_init(&format!("{name}.ones"), &[1], &[1.0]);
    let zeros = g.f32_init(&format!("{name}.zeros"), &[1], &[0.0]);
    // Channels last when the statistics are per position (rank 3 and 4 only).
    let per_position = n.channel_only(sequence) && rank > 2;
    let (to_last, from_last): (Vec<i64>, Vec<i64>) = match rank {
        3 => (vec![0, 2, 1], vec![0, 2, 1]),
        _ => (vec![0, 2, 3, 1], vec![0, 3, 1, 2]),
    };
    let src = if per_position {
        g.node(
            "Transpose",
            &t("channels_last"),
            &[&x],
            &t("channels_last"),
            vec![a_ints("perm", &to_last)],
        );
        t("channels_last")
    } else {
        x
    };
    let rows: Vec<i64> = if per_position {
        vec![-1, 1, c as i64]
    } else {
        vec![0, 1, -1]
    };
    let rshape = g.i64_init(&format!("{name}.rows_shape"), &[3], &rows);
    g.node("Reshape", &t("rows"), &[&src, &rshape], &t("rows"), vec![]);
    g.node(
        "InstanceNormalization",
        &t("instancenorm"),
        &[&t("rows"), &ones, &zeros],
        &t("normalized"),
        vec![a_float("epsilon", n.epsilon)],
    );
    g.node("Shape", &t("shape"), &[&src], &t("shape"), vec![]);
    g.node(
        "Reshape",
        &t("unrows"),
        &[&t("normalized"), &t("shape")],
        &t("unrows"),
        vec![],
    );
    // Scale and offset broadcast along the channel axis.
    let cshape: Vec<usize> = if per_position {
        vec![c]
    } else {
        std::iter::once(c).chain(vec![1; rank - 2]).collect()
    };
    let w = g.f32_init(&format!("{name}.weight"), &cshape, &s.data);
    let b = g.f32_init(&format!("{name}.bias"), &cshape, &o.data);
    g.node(
        "Mul",
        &t("scale"),
        &[&t("unrows"), &w],
        &t("scaled"),
        vec![],
    );
    if per_position {
        g.node(
            "Add",
            &t("offset"),
            &[&t("scaled"), &b],
            &t("shifted"),
            vec![],
        );
        g.node(
            "Transpose",
            name,
            &[&t("shifted")],
            out,
            vec![a_ints("perm", &from_last)],
        );
    } else {
        g.node("Add", name, &[&t("scaled"), &b], out, vec![]);
    }
    Ok(())
}
