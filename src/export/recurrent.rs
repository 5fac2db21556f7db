//! Recurrent layers (LSTM, BiLSTM, GRU): what every format can export, and the weights split
//! per direction.

use super::{Blob, ExportError, layer_err, param, values};
use crate::net::layer::{self, Layer, LayerKind};

/// Why a recurrent layer cannot be exported (by any format), if it cannot.
pub(super) fn recurrent_reason(r: &layer::Recurrent) -> Option<String> {
    if !matches!(r.state_activation.as_str(), "tanh" | "softsign") {
        return Some(format!(
            "StateActivationFunction '{}' is not supported",
            r.state_activation
        ));
    }
    if !matches!(r.gate_activation.as_str(), "sigmoid" | "hard-sigmoid") {
        return Some(format!(
            "GateActivationFunction '{}' is not supported",
            r.gate_activation
        ));
    }
    if !matches!(
        r.reset_gate_mode.as_str(),
        "" | "after-multiplication"
            | "before-multiplication"
            | "recurrent-bias-after-multiplication"
    ) {
        return Some(format!(
            "ResetGateMode '{}' is not supported",
            r.reset_gate_mode
        ));
    }
    None
}

/// Recurrent weights for ONNX and PyTorch: per direction, the input weights `[G*H, C]`, the
/// recurrent weights `[G*H, H]`, the input bias `[G*H]` and the recurrent bias `[G*H]` (zeros
/// unless a GRU stores recurrent biases), gate blocks in MATLAB's order; and the initial states
/// `[H]` per direction (zeros when not stored; the cell state for LSTMs only).
pub(crate) struct RecurrentWeights {
    pub hidden: usize,
    pub input_size: usize,
    pub w: Vec<Vec<f32>>,
    pub r: Vec<Vec<f32>>,
    pub wb: Vec<Vec<f32>>,
    pub rb: Vec<Vec<f32>>,
    pub h0: Vec<Vec<f32>>,
    pub c0: Vec<Vec<f32>>,
}

impl RecurrentWeights {
    pub fn new(l: &Layer, r: &layer::Recurrent, gates: usize) -> Result<Self, ExportError> {
        let h = r.hidden;
        let dirs = r.directions();
        let g = gates * h;
        let w = param(l, &r.input_weights, "InputWeights")?;
        let rw = param(l, &r.recurrent_weights, "RecurrentWeights")?;
        let b = param(l, &r.bias, "Bias")?;
        let c = w.shape.get(1).copied().unwrap_or(0);
        if w.shape != [g * dirs, c] || rw.shape != [g * dirs, h] || c == 0 {
            return Err(layer_err(
                l,
                format!(
                    "weights of shapes {:?} and {:?} do not fit {gates} gates of {h} hidden units",
                    w.shape, rw.shape
                ),
            ));
        }
        let two_bias = r.reset_gate_mode == "recurrent-bias-after-multiplication";
        let want = if two_bias { 2 * g } else { g * dirs };
        if b.numel() != want {
            return Err(layer_err(
                l,
                format!("Bias has {} values, expected {want}", b.numel()),
            ));
        }
        let state = |t: &Option<layer::Tensor>, what: &str| -> Result<Vec<f32>, ExportError> {
            match t {
                None => Ok(vec![0.0; h * dirs]),
                Some(t) => Ok(values(l, Some(t), what)?.data.clone()),
            }
        };
        let hs = state(&r.hidden_state, "HiddenState")?;
        let cs = state(&r.cell_state, "CellState")?;
        if hs.len() != h * dirs || cs.len() != h * dirs {
            return Err(layer_err(l, "the stored states do not fit the hidden size"));
        }
        let mut out = RecurrentWeights {
            hidden: h,
            input_size: c,
            w: vec![],
            r: vec![],
            wb: vec![],
            rb: vec![],
            h0: vec![],
            c0: vec![],
        };
        for d in 0..dirs {
            out.w.push(w.data[d * g * c..(d + 1) * g * c].to_vec());
            out.r.push(rw.data[d * g * h..(d + 1) * g * h].to_vec());
            out.wb.push(b.data[d * g..(d + 1) * g].to_vec());
            out.rb.push(if two_bias {
                b.data[g..2 * g].to_vec()
            } else {
                vec![0.0; g]
            });
            out.h0.push(hs[d * h..(d + 1) * h].to_vec());
            out.c0.push(cs[d * h..(d + 1) * h].to_vec());
        }
        Ok(out)
    }

    pub fn directions(&self) -> usize {
        self.w.len()
    }

    /// `rows` (gate blocks of `cols` values per row, `hidden` rows each) reordered: block `k`
    /// of the result is block `order[k]` of MATLAB's.
    pub fn reorder(&self, m: &[f32], cols: usize, order: &[usize]) -> Vec<f32> {
        let block = self.hidden * cols;
        order
            .iter()
            .flat_map(|&k| m[k * block..(k + 1) * block].iter().copied())
            .collect()
    }
}

/// The state dict entries of an LSTM/GRU layer `id` in PyTorch's names: `<id>.rnn.*` of its
/// `nn.LSTM`/`nn.GRU`, the initial states `<id>.h0` and (LSTM) `<id>.c0`.
pub(super) fn state_dict(
    l: &Layer,
    r: &layer::Recurrent,
    id: &str,
    out: &mut Vec<(String, Blob)>,
) -> Result<(), ExportError> {
    // nn.LSTM (i, f, g, o) and nn.GRU (r, z, n) use MATLAB's gate order.
    let gates = if matches!(l.kind, LayerKind::Lstm(_) | LayerKind::LstmProjected(_)) {
        4
    } else {
        3
    };
    let rw = RecurrentWeights::new(l, r, gates)?;
    let (g, c, h) = (gates * rw.hidden, rw.input_size, rw.hidden);
    let dirs = rw.directions();
    for d in 0..dirs {
        let sfx = if d == 0 { "l0" } else { "l0_reverse" };
        let mut blob = |name: &str, shape: Vec<usize>, v: &[f32]| {
            out.push((
                format!("{id}.rnn.{name}_{sfx}"),
                Blob::f32(shape, v.to_vec()),
            ));
        };
        blob("weight_ih", vec![g, c], &rw.w[d]);
        blob("weight_hh", vec![g, h], &rw.r[d]);
        blob("bias_ih", vec![g], &rw.wb[d]);
        blob("bias_hh", vec![g], &rw.rb[d]);
    }
    out.push((
        format!("{id}.h0"),
        Blob::f32(vec![dirs, 1, h], rw.h0.concat()),
    ));
    if gates == 4 {
        out.push((
            format!("{id}.c0"),
            Blob::f32(vec![dirs, 1, h], rw.c0.concat()),
        ));
    }
    Ok(())
}

/// A projected LSTM/GRU as the plain layer it computes: the factors multiplied out in `f64`
/// (`W = InputWeights · InputProjectorᵀ`, `R = RecurrentWeights · OutputProjectorᵀ`, see
/// `net::layers::recurrent::Projected`), each product rounded once to `f32`. Equal to the
/// factored layer up to that one rounding, and it lets every format use its plain LSTM/GRU
/// (ONNX's `LSTM`/`GRU` operators, PyTorch's `nn.LSTM`/`nn.GRU`); ONNX's LSTM has no projection
/// and PyTorch's `proj_size` projects the output instead, which is not MATLAB's layer.
pub(crate) fn multiplied_out(
    l: &Layer,
    p: &layer::Projected,
) -> Result<layer::Recurrent, ExportError> {
    let w = param(l, &p.rnn.input_weights, "InputWeights")?;
    let rw = param(l, &p.rnn.recurrent_weights, "RecurrentWeights")?;
    let qi = param(l, &p.input_projector, "InputProjector")?;
    let qo = param(l, &p.output_projector, "OutputProjector")?;
    let (ips, ops, h) = (
        p.input_projector_size,
        p.output_projector_size,
        p.rnn.hidden,
    );
    let rows = w.shape.first().copied().unwrap_or(0);
    let c = qi.shape.first().copied().unwrap_or(0);
    if w.shape != [rows, ips]
        || rw.shape != [rows, ops]
        || qi.shape != [c, ips]
        || qo.shape != [h, ops]
        || c == 0
    {
        return Err(layer_err(
            l,
            format!(
                "InputWeights {:?}, RecurrentWeights {:?}, InputProjector {:?} and \
                 OutputProjector {:?} do not fit projector sizes {ips} and {ops}",
                w.shape, rw.shape, qi.shape, qo.shape
            ),
        ));
    }
    // a [rows, k] · b[cols, k]ᵀ → [rows, cols].
    let product = |a: &[f32], b: &[f32], cols: usize, k: usize| -> Vec<f32> {
        let mut out = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                let s: f64 = (0..k)
                    .map(|m| a[i * k + m] as f64 * b[j * k + m] as f64)
                    .sum();
                out[i * cols + j] = s as f32;
            }
        }
        out
    };
    let mut r = p.rnn.clone();
    let full = |src: &Option<layer::Param>, shape: Vec<usize>, data: Vec<f32>| {
        src.as_ref().map(|s| layer::Param {
            value: layer::Tensor::new(shape, data),
            lr_factor: s.lr_factor,
            l2_factor: s.l2_factor,
        })
    };
    r.input_weights = full(
        &p.rnn.input_weights,
        vec![rows, c],
        product(&w.data, &qi.data, c, ips),
    );
    r.recurrent_weights = full(
        &p.rnn.recurrent_weights,
        vec![rows, h],
        product(&rw.data, &qo.data, h, ops),
    );
    r.input_size = c;
    Ok(r)
}
