//! Flatten, and the folding/unfolding of image sequences. (Dropout computes nothing; resize is
//! not exported.)

use super::graph::{Ctx, Graph, a_int, a_ints};
use crate::export::{ExportError, layer_err};

pub(super) fn flatten(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    // MATLAB flattens H x W x C column-major (h fastest) = NCWH row-major.
    let x = cx.arg(g, 0, true);
    let t = format!("{name}/nchw_to_ncwh");
    g.node(
        "Transpose",
        &format!("{name}/transpose"),
        &[&x],
        &t,
        vec![a_ints("perm", &[0, 1, 3, 2])],
    );
    g.node("Flatten", name, &[&t], out, vec![a_int("axis", 1)]);
    Ok(())
}

// Image sequences run as `[N, C*H*W, T]`, each frame's features in `[C, H, W]` order; folded,
// `[N*T, C, H, W]` with image `n*T + t` = time step `t` of sequence `n`.

/// The frame `[C, H, W]` of the layer's input, from shape inference.
fn frame(cx: &Ctx) -> Result<[usize; 3], ExportError> {
    cx.l.inputs
        .first()
        .and_then(|&j| cx.plan.net.layers[j].output)
        .filter(|s| s.numel() > 0)
        .map(|s| [s.c, s.h, s.w])
        .ok_or_else(|| layer_err(cx.l, "the size of its input frames is unknown"))
}

/// sequenceFoldingLayer: `[N, F, T]` → Transpose `[N, T, F]` → Reshape `[N*T, C, H, W]`.
pub(super) fn sequence_folding(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let [c, h, w] = frame(cx)?;
    let x = cx.arg(g, 0, false);
    let t = format!("{name}/time_major");
    g.node(
        "Transpose",
        &format!("{name}/transpose"),
        &[&x],
        &t,
        vec![a_ints("perm", &[0, 2, 1])],
    );
    let shape = g.i64_init(
        &format!("{name}/shape"),
        &[4],
        &[-1, c as i64, h as i64, w as i64],
    );
    g.node("Reshape", name, &[&t, &shape], out, vec![]);
    Ok(())
}

/// sequenceUnfoldingLayer: `[N*T, ...]` → Reshape `[N, T, F]` (N from the folding layer's input)
/// → Transpose `[N, F, T]`.
pub(super) fn sequence_unfolding(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let layers = &cx.plan.net.layers;
    let seq =
        cx.l.inputs
            .get(1)
            .map(|&j| &layers[j])
            .filter(|f| matches!(f.kind, crate::net::LayerKind::SequenceFolding))
            .and_then(|f| f.inputs.first().copied())
            .ok_or_else(|| {
                layer_err(
                    cx.l,
                    "its miniBatchSize input must come from a sequence folding layer",
                )
            })?;
    let features = frame(cx)?.iter().product::<usize>();
    let x = cx.arg(g, 0, false);
    let s = cx.value_of(seq);
    let shape_of = format!("{name}/sequence_shape");
    g.node(
        "Shape",
        &format!("{name}/shape_of"),
        &[&s],
        &shape_of,
        vec![],
    );
    let zero = g.i64_init(&format!("{name}/index0"), &[1], &[0]);
    let n = format!("{name}/batch");
    g.node(
        "Gather",
        &format!("{name}/gather"),
        &[&shape_of, &zero],
        &n,
        vec![a_int("axis", 0)],
    );
    let rest_dims = g.i64_init(
        &format!("{name}/time_features"),
        &[2],
        &[-1, features as i64],
    );
    let target = format!("{name}/target");
    g.node(
        "Concat",
        &format!("{name}/concat"),
        &[&n, &rest_dims],
        &target,
        vec![a_int("axis", 0)],
    );
    let y = format!("{name}/time_major");
    g.node(
        "Reshape",
        &format!("{name}/reshape"),
        &[&x, &target],
        &y,
        vec![],
    );
    g.node(
        "Transpose",
        name,
        &[&y],
        out,
        vec![a_ints("perm", &[0, 2, 1])],
    );
    Ok(())
}

/// flattenLayer on image sequences: each frame's `H x W x C` column-major (h fastest), i.e.
/// `[C, W, H]` row-major: `[N, F, T]` → `[N, C, H, W, T]` → swap H, W → `[N, F, T]`.
pub(super) fn flatten_sequence(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let [c, h, w] = frame(cx)?;
    let x = cx.arg(g, 0, false);
    let five = g.i64_init(
        &format!("{name}/frames"),
        &[5],
        &[0, c as i64, h as i64, w as i64, -1],
    );
    let a = format!("{name}/chwt");
    g.node(
        "Reshape",
        &format!("{name}/unflatten"),
        &[&x, &five],
        &a,
        vec![],
    );
    let b = format!("{name}/cwht");
    g.node(
        "Transpose",
        &format!("{name}/transpose"),
        &[&a],
        &b,
        vec![a_ints("perm", &[0, 1, 3, 2, 4])],
    );
    let three = g.i64_init(
        &format!("{name}/features"),
        &[3],
        &[0, (c * h * w) as i64, -1],
    );
    g.node("Reshape", name, &[&b, &three], out, vec![]);
    Ok(())
}
