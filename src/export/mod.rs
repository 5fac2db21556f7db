//! Exporters: the network description (with its weights) → ONNX, PyTorch, Rust source.
//! They read the description only (`MatNet::write_back` puts a module's weights into it).

use crate::net::Network;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("the network cannot be exported: {0}")]
    Unsupported(String),
    #[error("layer '{layer}' ({class}): {msg}")]
    Layer {
        layer: String,
        class: String,
        msg: String,
    },
}

/// Options shared by the exporters.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// ONNX opset version.
    pub opset: i64,
    /// Put the input normalization into the exported graph (MATLAB's exporter does).
    pub normalization: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: 17,
            normalization: true,
        }
    }
}

/// The network as an ONNX model (serialized `ModelProto`).
pub fn onnx(_net: &Network, _opts: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    Err(ExportError::Unsupported(
        "ONNX export is not built yet".into(),
    ))
}

/// The network for PyTorch: `(file name, bytes)` for `model.py`, `weights.safetensors`, `model.pt`.
pub fn pytorch(
    _net: &Network,
    _opts: &ExportOptions,
) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    Err(ExportError::Unsupported(
        "PyTorch export is not built yet".into(),
    ))
}

/// The network as a Rust source module for Burn: `(file name, bytes)`.
pub fn rust_source(
    _net: &Network,
    _opts: &ExportOptions,
) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    Err(ExportError::Unsupported(
        "Rust source export is not built yet".into(),
    ))
}
