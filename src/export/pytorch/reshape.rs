//! Flatten, dropout and the folding/unfolding of image sequences in `model.py`.

use super::{Cx, Emit};
use crate::export::{ExportError, float_lit, layer_err};

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

const SEQUENCE_FOLDING: &str = r#"
class MatlabSequenceFolding(nn.Module):
    """sequenceFoldingLayer: image sequences [N, C*H*W, T] (each frame's features in [C, H, W]
    order) -> images [N*T, C, H, W] (image n*T + t is time step t of sequence n)."""

    def __init__(self, frame):
        super().__init__()
        self.frame = frame

    def forward(self, x):
        return x.transpose(1, 2).reshape(-1, *self.frame)
"#;

const SEQUENCE_UNFOLDING: &str = r#"
class MatlabSequenceUnfolding(nn.Module):
    """sequenceUnfoldingLayer: [N*T, ...] back to [N, features, T]; N is the batch size of the
    image sequences that were folded (the folding layer's input)."""

    def forward(self, x, sequences):
        n = sequences.shape[0]
        return x.reshape(n, -1, x[0].numel()).transpose(1, 2)
"#;

const SEQUENCE_FLATTEN: &str = r#"
class MatlabSequenceFlatten(nn.Module):
    """flattenLayer on image sequences [N, C*H*W, T]: MATLAB flattens each frame's H x W x C
    column-major (h fastest), i.e. [C, W, H] row-major."""

    def __init__(self, frame):
        super().__init__()
        self.frame = frame

    def forward(self, x):
        n, f, t = x.shape
        c, h, w = self.frame
        return x.reshape(n, c, h, w, t).transpose(2, 3).reshape(n, f, t)
"#;

/// The frame `(C, H, W)` of the layer's input, from shape inference.
fn frame(cx: &Cx) -> Result<String, ExportError> {
    cx.l.inputs
        .first()
        .and_then(|&j| cx.plan.net.layers[j].output)
        .filter(|s| s.numel() > 0)
        .map(|s| format!("({}, {}, {})", s.c, s.h, s.w))
        .ok_or_else(|| layer_err(cx.l, "the size of its input frames is unknown"))
}

pub(super) fn sequence_folding(cx: &mut Cx) -> Result<Emit, ExportError> {
    cx.need(SEQUENCE_FOLDING);
    let f = frame(cx)?;
    Ok(cx.module(format!("MatlabSequenceFolding({f})"), false))
}

pub(super) fn sequence_unfolding(cx: &mut Cx) -> Result<Emit, ExportError> {
    cx.need(SEQUENCE_UNFOLDING);
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
    Ok(Emit::Module {
        decl: "MatlabSequenceUnfolding()".into(),
        call: format!("self.{}({}, {})", cx.id, cx.arg(0, false), cx.var[seq]),
    })
}

pub(super) fn flatten_sequence(cx: &mut Cx) -> Result<Emit, ExportError> {
    cx.need(SEQUENCE_FLATTEN);
    let f = frame(cx)?;
    Ok(cx.module(format!("MatlabSequenceFlatten({f})"), false))
}
