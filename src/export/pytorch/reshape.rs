//! Flatten and dropout in `model.py`.

use super::{Cx, Emit};
use crate::export::float_lit;

const FLATTEN: &str = r#"
class MatlabFlatten(nn.Module):
    """flattenLayer: MATLAB flattens H x W x C column-major (h fastest), i.e. NCWH row-major."""

    def forward(self, x):
        return x.transpose(2, 3).flatten(1)
"#;

pub(super) fn flatten(cx: &mut Cx) -> Emit {
    cx.need(FLATTEN);
    cx.module("MatlabFlatten()", true)
}

pub(super) fn dropout(cx: &Cx, probability: f64) -> Emit {
    cx.module(format!("nn.Dropout(p={})", float_lit(probability)), false)
}
