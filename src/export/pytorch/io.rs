//! Input and output layers in `model.py`.

use super::{Cx, Emit};

/// The input normalization module, written when the normalization is part of the model.
pub(super) const INPUT_NORMALIZATION: &str = r#"
class InputNormalization(nn.Module):
    """MATLAB's input normalization as (x - shift) * scale (buffers saved with the weights)."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    def forward(self, x):
        return (x - self.shift) * self.scale
"#;

/// imageInputLayer / featureInputLayer / sequenceInputLayer: the normalization, or `x` itself.
pub(super) fn input(cx: &Cx) -> Emit {
    match &cx.plan.norm {
        Some(n) => {
            let shape: Vec<String> = n.shape.iter().map(|d| d.to_string()).collect();
            Emit::Module {
                decl: format!("InputNormalization(({}))", shape.join(", ")),
                call: cx.call("x"),
            }
        }
        None => Emit::Note {
            note: format!(
                "{}: input, normalization not included (apply it to x yourself)",
                cx.l.name
            ),
            value: "x".into(),
        },
    }
}

/// classificationLayer / regressionLayer: nothing to compute, the value is the input's.
pub(super) fn output(cx: &Cx, cls: &str) -> Emit {
    Emit::Note {
        note: format!(
            "{}: {cls} (training loss only, not needed for inference)",
            cx.l.name
        ),
        value: cx.var[cx.l.inputs[0]].clone(),
    }
}
