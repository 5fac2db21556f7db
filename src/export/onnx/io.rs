//! Input layers: the input normalization. (Output layers compute nothing.)

use super::graph::{Ctx, Graph};
use crate::export::ExportError;

/// The input normalization `(x - shift) * scale` (a `Sub` alone for 'zerocenter').
pub(super) fn normalization(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let n = cx
        .plan
        .norm
        .as_ref()
        .expect("computes only with normalization");
    let shift = g.f32_init(&format!("{name}.shift"), &n.shape, &n.shift);
    if n.zero_center {
        g.node("Sub", name, &["input", &shift], out, vec![]);
    } else {
        let scale = g.f32_init(&format!("{name}.scale"), &n.shape, &n.scale);
        let centered = format!("{name}/centered");
        g.node(
            "Sub",
            &format!("{name}/sub"),
            &["input", &shift],
            &centered,
            vec![],
        );
        g.node("Mul", name, &[&centered, &scale], out, vec![]);
    }
    Ok(())
}
