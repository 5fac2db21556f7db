//! Transformer layers in the Rust source export: refused (the Rust source export has no sequence
//! networks; ONNX and PyTorch export them).

use crate::export::{ExportError, layer_err};
use crate::net::layer::{Layer, Transformer};

/// The refusal, naming the layer.
pub(super) fn refuse(l: &Layer, t: &Transformer) -> ExportError {
    layer_err(
        l,
        format!(
            "{} layers are not supported by the Rust source export (use the ONNX or PyTorch export)",
            t.names().kind
        ),
    )
}
