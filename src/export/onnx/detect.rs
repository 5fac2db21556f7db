//! The YOLO v2 transform (`net::layers::detect` documents the channel layout).

use super::graph::{Ctx, Graph, a_int};
use crate::export::ExportError;
use crate::net::layers::detect::BOX_PREDICTIONS;

/// `[N, A*(5+K), H, W]` → Reshape `[N, 5+K, A, H*W]` → Sigmoid on predictions 0..3, Exp on 3..5,
/// Softmax over 5.. (axis 1) → Concat → Reshape back to the input's shape.
pub(super) fn yolov2_transform(g: &mut Graph, cx: &Ctx, anchors: usize) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let c = cx.l.output.map_or(0, |s| s.c);
    let a = anchors.max(1);
    let k = c / a;
    if c == 0 || k <= BOX_PREDICTIONS {
        return Err(crate::export::layer_err(
            cx.l,
            format!("{c} channels do not hold {a} anchors of 5 + K predictions"),
        ));
    }
    let x = cx.arg(g, 0, true);
    let shape = format!("{name}/input_shape");
    g.node("Shape", &shape, &[&x], &shape, vec![]);
    let split_shape = g.i64_init(
        &format!("{name}/split_shape"),
        &[4],
        &[0, k as i64, a as i64, -1],
    );
    let split = format!("{name}/split");
    g.node("Reshape", &split, &[&x, &split_shape], &split, vec![]);
    let axes = g.i64_init(&format!("{name}/axes"), &[1], &[1]);
    let mut parts = Vec::new();
    for (what, op, start, end) in [
        ("iou_xy", "Sigmoid", 0, 3),
        ("wh", "Exp", 3, 5),
        ("classes", "Softmax", 5, k as i64),
    ] {
        let s = g.i64_init(&format!("{name}/{what}_start"), &[1], &[start]);
        let e = g.i64_init(&format!("{name}/{what}_end"), &[1], &[end]);
        let sliced = format!("{name}/{what}_raw");
        g.node("Slice", &sliced, &[&split, &s, &e, &axes], &sliced, vec![]);
        let v = format!("{name}/{what}");
        let attrs = if op == "Softmax" {
            vec![a_int("axis", 1)]
        } else {
            vec![]
        };
        g.node(op, &v, &[&sliced], &v, attrs);
        parts.push(v);
    }
    let joined = format!("{name}/joined");
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    g.node("Concat", &joined, &refs, &joined, vec![a_int("axis", 1)]);
    g.node("Reshape", name, &[&joined, &shape], out, vec![]);
    Ok(())
}
