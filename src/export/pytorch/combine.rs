//! Layers that combine several inputs in `model.py`.

use super::{Cx, Emit};
use crate::export::concat_axis;

const ADDITION: &str = r#"
class Addition(nn.Module):
    """additionLayer: element-wise sum of the inputs."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
"#;

const MULTIPLICATION: &str = r#"
class Multiplication(nn.Module):
    """multiplicationLayer: element-wise product of the inputs."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out
"#;

const CONCATENATION: &str = r#"
class Concatenation(nn.Module):
    """depthConcatenationLayer / concatenationLayer along an NCHW axis."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)
"#;

/// The helper module `decl` called on all inputs (all lifted to four dimensions where one has
/// four).
fn combine(cx: &mut Cx, helper: &'static str, decl: String) -> Emit {
    let four = cx.plan.lift_all(cx.i);
    let xs: Vec<String> = (0..cx.l.inputs.len()).map(|k| cx.arg(k, four)).collect();
    cx.need(helper);
    Emit::Module {
        decl,
        call: cx.call(&xs.join(", ")),
    }
}

pub(super) fn addition(cx: &mut Cx) -> Emit {
    combine(cx, ADDITION, "Addition()".into())
}

pub(super) fn multiplication(cx: &mut Cx) -> Emit {
    combine(cx, MULTIPLICATION, "Multiplication()".into())
}

/// depthConcatenationLayer / concatenationLayer.
pub(super) fn concat(cx: &mut Cx) -> Emit {
    let decl = format!("Concatenation({})", concat_axis(&cx.l.kind));
    combine(cx, CONCATENATION, decl)
}
