//! Transformer layers on `[N, C, T]` as plain ONNX graphs (MatMul, Softmax, Gather, Slice, ...):
//! no contrib ops, so any opset from 13 runs them. The sequence length is read from the input
//! (`Shape`), so the graphs take any `T`.

use super::graph::{Ctx, Graph, a_int, a_ints};
use crate::export::{ExportError, layer_err, param};
use crate::net::layer::Transformer;
use crate::net::layers::transformer::SelfAttention;
use onnx_ir::AttributeType;

pub(super) fn transformer(g: &mut Graph, cx: &Ctx, t: &Transformer) -> Result<(), ExportError> {
    match t {
        Transformer::PositionEmbedding(_) => position_embedding(g, cx, t),
        Transformer::SinusoidalEncoding(s) => sinusoidal(g, cx, s.output_size),
        Transformer::SelfAttention(a) => attention(g, cx, a),
        Transformer::Indexing1d { last } => {
            let x = cx.arg(g, 0, false);
            let idx = g.i64_init(
                &format!("{}.index", cx.name),
                &[],
                &[if *last { -1 } else { 0 }],
            );
            g.node(
                "Gather",
                cx.name,
                &[&x, &idx],
                &cx.out,
                vec![a_int("axis", 2)],
            );
            Ok(())
        }
        Transformer::EmbeddingConcat(_) => embedding_concat(g, cx, t),
        Transformer::WordEmbedding(_) => word_embedding(g, cx, t),
    }
}

/// `[c, r]` from row-major `[r, c]`.
fn transposed(data: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = data[i * c + j];
        }
    }
    out
}

/// `dim` of `x`'s shape as a 1-element int64 tensor (`scalar`: a 0-d one).
fn dim_of(g: &mut Graph, name: &str, x: &str, dim: i64, scalar: bool) -> String {
    let shape = format!("{name}/shape");
    if !g.nodes.iter().any(|n| n.output.first() == Some(&shape)) {
        g.node("Shape", &shape, &[x], &shape, vec![]);
    }
    let tag = if scalar { "s" } else { "v" };
    let out = format!("{name}/dim{dim}{tag}");
    let dims: &[usize] = if scalar { &[] } else { &[1] };
    let idx = g.i64_init(&format!("{name}.dim{dim}{tag}"), dims, &[dim]);
    g.node(
        "Gather",
        &out,
        &[&shape, &idx],
        &out,
        vec![a_int("axis", 0)],
    );
    out
}

/// `value` `[1, c, k]` expanded over the batch of `x` to `[N, c, k]` (`k` from `k_value`, a
/// 1-element int64 tensor).
fn expand_batch(
    g: &mut Graph,
    name: &str,
    x: &str,
    value: &str,
    c: usize,
    k_value: &str,
) -> String {
    let n = dim_of(g, name, x, 0, false);
    let cc = g.i64_init(&format!("{name}.channels"), &[1], &[c as i64]);
    let shape = format!("{name}/out_shape");
    g.node(
        "Concat",
        &shape,
        &[&n, &cc, k_value],
        &shape,
        vec![a_int("axis", 0)],
    );
    let out = format!("{name}/expanded");
    g.node("Expand", &out, &[value, &shape], &out, vec![]);
    out
}

/// `Weights(:, 1:T)` over the batch.
fn position_embedding(g: &mut Graph, cx: &Ctx, t: &Transformer) -> Result<(), ExportError> {
    let Transformer::PositionEmbedding(p) = t else {
        unreachable!("called for position embeddings")
    };
    let (l, name) = (cx.l, cx.name);
    let x = cx.arg(g, 0, false);
    let w = param(l, &p.weights, "Weights")?;
    let (c, m) = (w.shape[0], w.shape[1]);
    let w = g.f32_init(&format!("{name}.weight"), &[1, c, m], &w.data);
    let steps = dim_of(g, name, &x, 2, false);
    let zero = g.i64_init(&format!("{name}.start"), &[1], &[0]);
    let axis = g.i64_init(&format!("{name}.axis"), &[1], &[2]);
    let sliced = format!("{name}/sliced");
    g.node(
        "Slice",
        &sliced,
        &[&w, &zero, &steps, &axis],
        &sliced,
        vec![],
    );
    let e = expand_batch(g, name, &x, &sliced, c, &steps);
    g.node("Identity", name, &[&e], &cx.out, vec![]);
    Ok(())
}

/// Positions `0..T` as a `[1, T]` float row (and the `[1]` int64 `T`).
fn positions(g: &mut Graph, name: &str, x: &str) -> (String, String) {
    let steps_s = dim_of(g, name, x, 2, true);
    let steps_v = dim_of(g, name, x, 2, false);
    let tf = format!("{name}/steps_f");
    let mut to = super::graph::attr("to", AttributeType::INT);
    to.i = 1; // FLOAT
    g.node("Cast", &tf, &[&steps_s], &tf, vec![to]);
    let zero = g.scalar(0.0);
    let one = g.scalar(1.0);
    let range = format!("{name}/range");
    g.node("Range", &range, &[&zero, &tf, &one], &range, vec![]);
    let ax0 = g.i64_init(&format!("{name}.axis0"), &[1], &[0]);
    let row = format!("{name}/positions");
    g.node("Unsqueeze", &row, &[&range, &ax0], &row, vec![]);
    (row, steps_v)
}

/// `sin`/`cos(p / 10000^(2k/d))` on interleaved channels.
fn sinusoidal(g: &mut Graph, cx: &Ctx, d: usize) -> Result<(), ExportError> {
    let name = cx.name;
    let x = cx.arg(g, 0, false);
    let (row, steps) = positions(g, name, &x);
    let freq: Vec<f32> = (0..d)
        .map(|ch| 10000f64.powf(-((ch - ch % 2) as f64) / d as f64) as f32)
        .collect();
    let even: Vec<f32> = (0..d).map(|ch| (ch % 2 == 0) as u8 as f32).collect();
    let odd: Vec<f32> = even.iter().map(|e| 1.0 - e).collect();
    let freq = g.f32_init(&format!("{name}.frequency"), &[d, 1], &freq);
    let even = g.f32_init(&format!("{name}.sin_channels"), &[d, 1], &even);
    let odd = g.f32_init(&format!("{name}.cos_channels"), &[d, 1], &odd);
    let t = |s: &str| format!("{name}/{s}");
    g.node("Mul", &t("angles"), &[&freq, &row], &t("angles"), vec![]);
    g.node("Sin", &t("sin"), &[&t("angles")], &t("sin"), vec![]);
    g.node("Cos", &t("cos"), &[&t("angles")], &t("cos"), vec![]);
    g.node(
        "Mul",
        &t("sin_part"),
        &[&t("sin"), &even],
        &t("sin_part"),
        vec![],
    );
    g.node(
        "Mul",
        &t("cos_part"),
        &[&t("cos"), &odd],
        &t("cos_part"),
        vec![],
    );
    g.node(
        "Add",
        &t("table"),
        &[&t("sin_part"), &t("cos_part")],
        &t("table"),
        vec![],
    );
    let ax0 = g.i64_init(&format!("{name}.batch_axis"), &[1], &[0]);
    g.node(
        "Unsqueeze",
        &t("table3"),
        &[&t("table"), &ax0],
        &t("table3"),
        vec![],
    );
    let e = expand_batch(g, name, &x, &t("table3"), d, &steps);
    g.node("Identity", name, &[&e], &cx.out, vec![]);
    Ok(())
}

/// Multi-head self-attention: per head `softmax(Q K^T / sqrt(dk) + mask) V`.
fn attention(g: &mut Graph, cx: &Ctx, a: &SelfAttention) -> Result<(), ExportError> {
    let (l, name) = (cx.l, cx.name);
    let x = cx.arg(g, 0, false);
    let t = |s: &str| format!("{name}/{s}");
    let h = a.num_heads as i64;
    g.node(
        "Transpose",
        &t("to_ntc"),
        &[&x],
        &t("ntc"),
        vec![a_ints("perm", &[0, 2, 1])],
    );
    // Projections [N, T, C] · W^T + b, split into heads.
    type P = Option<crate::net::layer::Param>;
    let mut project = |what: &str, w: &P, b: &P, wn: &str, bn: &str, perm: &[i64]| {
        let w = param(l, w, wn)?;
        let b = param(l, b, bn)?;
        let (rows, cols) = (w.shape[0], w.shape[1]);
        let wt = g.f32_init(
            &format!("{name}.{what}_weight_t"),
            &[cols, rows],
            &transposed(&w.data, rows, cols),
        );
        let bb = g.f32_init(&format!("{name}.{what}_bias"), &[rows], &b.data);
        g.node(
            "MatMul",
            &t(&format!("{what}_matmul")),
            &[&t("ntc"), &wt],
            &t(&format!("{what}_mm")),
            vec![],
        );
        g.node(
            "Add",
            &t(&format!("{what}_add")),
            &[&t(&format!("{what}_mm")), &bb],
            &t(what),
            vec![],
        );
        let shape = g.i64_init(
            &format!("{name}.{what}_heads"),
            &[4],
            &[0, 0, h, rows as i64 / h],
        );
        g.node(
            "Reshape",
            &t(&format!("{what}_split")),
            &[&t(what), &shape],
            &t(&format!("{what}_split")),
            vec![],
        );
        let out = t(&format!("{what}_heads"));
        g.node(
            "Transpose",
            &out,
            &[&t(&format!("{what}_split"))],
            &out,
            vec![a_ints("perm", perm)],
        );
        Ok::<(String, usize), ExportError>((out, rows))
    };
    let (q, kc) = project(
        "query",
        &a.query_weights,
        &a.query_bias,
        "QueryWeights",
        "QueryBias",
        &[0, 2, 1, 3],
    )?;
    let (k, _) = project(
        "key",
        &a.key_weights,
        &a.key_bias,
        "KeyWeights",
        "KeyBias",
        &[0, 2, 3, 1],
    )?;
    let (v, vc) = project(
        "value",
        &a.value_weights,
        &a.value_bias,
        "ValueWeights",
        "ValueBias",
        &[0, 2, 1, 3],
    )?;
    if !kc.is_multiple_of(a.num_heads) || !vc.is_multiple_of(a.num_heads) {
        return Err(layer_err(
            l,
            "NumHeads does not divide the key and value channels",
        ));
    }
    let scale = g.scalar((1.0 / ((kc / a.num_heads) as f64).sqrt()) as f32);
    g.node(
        "MatMul",
        &t("scores_matmul"),
        &[&q, &k],
        &t("scores_raw"),
        vec![],
    );
    g.node(
        "Mul",
        &t("scale"),
        &[&t("scores_raw"), &scale],
        &t("scores"),
        vec![],
    );
    let mut scores = t("scores");
    if a.causal {
        // mask[i, j] = -inf where key j comes after query i.
        let (row, _) = positions(g, name, &x);
        // query positions as a column [T, 1]: the row [1, T] transposed.
        g.node(
            "Transpose",
            &t("query_pos"),
            &[&row],
            &t("query_pos"),
            vec![a_ints("perm", &[1, 0])],
        );
        g.node(
            "Greater",
            &t("future"),
            &[&row, &t("query_pos")],
            &t("future"),
            vec![],
        ); // [T, T]
        let neg = g.scalar(f32::NEG_INFINITY);
        let zero = g.scalar(0.0);
        g.node(
            "Where",
            &t("mask"),
            &[&t("future"), &neg, &zero],
            &t("mask"),
            vec![],
        );
        g.node(
            "Add",
            &t("masked"),
            &[&scores, &t("mask")],
            &t("masked"),
            vec![],
        );
        scores = t("masked");
    }
    g.node(
        "Softmax",
        &t("softmax"),
        &[&scores],
        &t("weights"),
        vec![a_int("axis", -1)],
    );
    g.node(
        "MatMul",
        &t("context_matmul"),
        &[&t("weights"), &v],
        &t("context"),
        vec![],
    );
    g.node(
        "Transpose",
        &t("merge_t"),
        &[&t("context")],
        &t("context_nthd"),
        vec![a_ints("perm", &[0, 2, 1, 3])],
    );
    let merged = g.i64_init(&format!("{name}.merged_shape"), &[3], &[0, 0, vc as i64]);
    g.node(
        "Reshape",
        &t("merge"),
        &[&t("context_nthd"), &merged],
        &t("merged"),
        vec![],
    );
    let wo = param(l, &a.output_weights, "OutputWeights")?;
    let bo = param(l, &a.output_bias, "OutputBias")?;
    let (o, ovc) = (wo.shape[0], wo.shape[1]);
    let wot = g.f32_init(
        &format!("{name}.output_weight_t"),
        &[ovc, o],
        &transposed(&wo.data, o, ovc),
    );
    let bo = g.f32_init(&format!("{name}.output_bias"), &[o], &bo.data);
    g.node(
        "MatMul",
        &t("output_matmul"),
        &[&t("merged"), &wot],
        &t("output_mm"),
        vec![],
    );
    g.node(
        "Add",
        &t("output_add"),
        &[&t("output_mm"), &bo],
        &t("ntk"),
        vec![],
    );
    g.node(
        "Transpose",
        name,
        &[&t("ntk")],
        &cx.out,
        vec![a_ints("perm", &[0, 2, 1])],
    );
    Ok(())
}

/// The learned vector as a new first time step.
fn embedding_concat(g: &mut Graph, cx: &Ctx, t: &Transformer) -> Result<(), ExportError> {
    let Transformer::EmbeddingConcat(e) = t else {
        unreachable!("called for embedding concatenation")
    };
    let (l, name) = (cx.l, cx.name);
    let x = cx.arg(g, 0, false);
    let w = param(l, &e.weights, "Weights")?;
    let c = w.numel();
    let w = g.f32_init(&format!("{name}.weight"), &[1, c, 1], &w.data);
    let one = g.i64_init(&format!("{name}.one_step"), &[1], &[1]);
    let first = expand_batch(g, name, &x, &w, c, &one);
    g.node(
        "Concat",
        name,
        &[&first, &x],
        &cx.out,
        vec![a_int("axis", 2)],
    );
    Ok(())
}

/// Token ids (rounded; outside `1..NumWords` → the last word) → `Weights(:, id)`.
fn word_embedding(g: &mut Graph, cx: &Ctx, t: &Transformer) -> Result<(), ExportError> {
    let Transformer::WordEmbedding(we) = t else {
        unreachable!("called for word embeddings")
    };
    let (l, name) = (cx.l, cx.name);
    let x = cx.arg(g, 0, false);
    let w = param(l, &we.weights, "Weights")?;
    let (d, v) = (w.shape[0], w.shape[1]);
    let table = g.f32_init(
        &format!("{name}.weight_t"),
        &[v, d],
        &transposed(&w.data, d, v),
    );
    let tn = |s: &str| format!("{name}/{s}");
    let flat = g.i64_init(&format!("{name}.ids_shape"), &[2], &[0, -1]);
    g.node(
        "Reshape",
        &tn("ids_nt"),
        &[&x, &flat],
        &tn("ids_nt"),
        vec![],
    );
    g.node("Round", &tn("round"), &[&tn("ids_nt")], &tn("ids"), vec![]);
    let lo = g.scalar(1.0);
    let hi = g.scalar(v as f32);
    g.node(
        "Less",
        &tn("below"),
        &[&tn("ids"), &lo],
        &tn("below"),
        vec![],
    );
    g.node(
        "Greater",
        &tn("above"),
        &[&tn("ids"), &hi],
        &tn("above"),
        vec![],
    );
    g.node(
        "Or",
        &tn("outside_range"),
        &[&tn("below"), &tn("above")],
        &tn("outside_range"),
        vec![],
    );
    g.node("IsNaN", &tn("nan"), &[&tn("ids")], &tn("nan"), vec![]);
    g.node(
        "Or",
        &tn("outside"),
        &[&tn("outside_range"), &tn("nan")],
        &tn("outside"),
        vec![],
    );
    g.node(
        "Where",
        &tn("mapped"),
        &[&tn("outside"), &hi, &tn("ids")],
        &tn("mapped"),
        vec![],
    );
    g.node(
        "Sub",
        &tn("zero_based"),
        &[&tn("mapped"), &lo],
        &tn("zero_based"),
        vec![],
    );
    let mut to = super::graph::attr("to", AttributeType::INT);
    to.i = 7; // INT64
    g.node(
        "Cast",
        &tn("index"),
        &[&tn("zero_based")],
        &tn("index"),
        vec![to],
    );
    g.node(
        "Gather",
        &tn("lookup"),
        &[&table, &tn("index")],
        &tn("ntd"),
        vec![a_int("axis", 0)],
    );
    g.node(
        "Transpose",
        name,
        &[&tn("ntd")],
        &cx.out,
        vec![a_ints("perm", &[0, 2, 1])],
    );
    Ok(())
}
