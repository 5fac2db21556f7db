//! Recurrent layers in the generated Burn source: refused (the generated module has no
//! recurrent layers yet, as for the plain LSTM/GRU).

use crate::export::{ExportError, layer_err};
use crate::net::layer::Layer;

/// Why a projected LSTM/GRU cannot be exported to Rust.
pub(super) fn refuse_projected(l: &Layer) -> ExportError {
    layer_err(
        l,
        "projected LSTM/GRU layers cannot be exported to Rust source: the generated Burn module \
         has no recurrent layers (export to ONNX or PyTorch, or run it with matcnn)",
    )
}
