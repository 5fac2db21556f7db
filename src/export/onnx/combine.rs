//! Addition, multiplication, concatenation.

use super::graph::{Ctx, Graph, a_int};
use crate::export::{ExportError, concat_axis};
use crate::net::layer::LayerKind;

/// Addition or multiplication of all inputs, left to right.
pub(super) fn elementwise(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let (op, short) = if matches!(l.kind, LayerKind::Addition { .. }) {
        ("Add", "add")
    } else {
        ("Mul", "mul")
    };
    let four = cx.plan.lift_all(cx.i);
    let xs: Vec<String> = (0..l.inputs.len()).map(|k| cx.arg(g, k, four)).collect();
    if xs.len() == 1 {
        g.node("Identity", name, &[&xs[0]], out, vec![]);
    }
    let mut acc = xs[0].clone();
    for (k, x) in xs.iter().enumerate().skip(1) {
        let last = k == xs.len() - 1;
        let (node, value) = if last {
            (name.to_string(), out.to_string())
        } else {
            (format!("{name}/{short}{k}"), format!("{name}/{short}{k}"))
        };
        g.node(op, &node, &[&acc, x], &value, vec![]);
        acc = value;
    }
    Ok(())
}

pub(super) fn concat(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let four = cx.plan.lift_all(cx.i);
    let xs: Vec<String> = (0..l.inputs.len()).map(|k| cx.arg(g, k, four)).collect();
    let xs: Vec<&str> = xs.iter().map(|s| s.as_str()).collect();
    g.node(
        "Concat",
        name,
        &xs,
        out,
        vec![a_int("axis", concat_axis(&l.kind) as i64)],
    );
    Ok(())
}
