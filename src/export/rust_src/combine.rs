//! Layers that combine several inputs in `model.rs`: single lines of `forward`.

use super::{Cx, Stmt};
use crate::export::concat_axis;

/// All inputs (all lifted to four dimensions where one has four), each consuming one use.
fn inputs(cx: &mut Cx) -> Vec<String> {
    let four = cx.plan.lift_all(cx.i);
    (0..cx.l.inputs.len()).map(|k| cx.arg(k, four)).collect()
}

/// additionLayer (`op` = " + ") / multiplicationLayer (" * ").
pub(super) fn elementwise(cx: &mut Cx, op: &str) -> Stmt {
    Stmt::Let(inputs(cx).join(op))
}

/// depthConcatenationLayer / concatenationLayer.
pub(super) fn concat(cx: &mut Cx) -> Stmt {
    let xs = inputs(cx);
    Stmt::Let(format!(
        "Tensor::cat(vec![{}], {})",
        xs.join(", "),
        concat_axis(&cx.l.kind)
    ))
}
