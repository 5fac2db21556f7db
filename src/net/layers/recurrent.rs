//! Recurrent layers: LSTM, BiLSTM and GRU.

use serde::{Deserialize, Serialize};

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, Param, Shape, Tensor};
use crate::net::layout;
use crate::net::shape::{self, Declared};

use super::{Imported, Names, param_numel, param_tensor};

/// A recurrent layer (LSTM, BiLSTM, GRU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recurrent {
    pub hidden: usize,
    pub input_size: usize,
    /// True for OutputMode 'sequence', false for 'last'.
    pub return_sequence: bool,
    pub bidirectional: bool,
    pub state_activation: String,
    pub gate_activation: String,
    pub input_weights: Option<Param>,
    pub recurrent_weights: Option<Param>,
    /// `[G*H*D]`; a GRU with reset gate mode 'recurrent-bias-after-multiplication' stores
    /// `[2*G*H]`: the input biases, then the recurrent biases.
    pub bias: Option<Param>,
    /// GRU `ResetGateMode`: 'after-multiplication', 'before-multiplication' or
    /// 'recurrent-bias-after-multiplication' (empty for LSTMs).
    #[serde(default)]
    pub reset_gate_mode: String,
    /// Initial hidden state `[H*D]` (MATLAB's `HiddenState`; zeros when not stored).
    #[serde(default)]
    pub hidden_state: Option<Tensor>,
    /// Initial cell state `[H*D]` (LSTM `CellState`).
    #[serde(default)]
    pub cell_state: Option<Tensor>,
}

pub const GRU: Names = Names {
    kind: "Gru",
    stem: "gru",
};

/// An LSTM's names (`bilstm` when bidirectional).
pub(crate) fn lstm_names(r: &Recurrent) -> Names {
    Names {
        kind: "Lstm",
        stem: if r.bidirectional { "bilstm" } else { "lstm" },
    }
}

impl Recurrent {
    /// Number of directions (2 for a BiLSTM).
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// `gru`: the layer is a GRU (an LSTM otherwise).
    pub(crate) fn describe(&self, gru: bool) -> String {
        let r = self;
        let mut d = format!(
            "{} with {} hidden units, output mode {}",
            match (gru, r.bidirectional) {
                (true, _) => "GRU",
                (_, true) => "BiLSTM",
                _ => "LSTM",
            },
            r.hidden,
            if r.return_sequence {
                "sequence"
            } else {
                "last"
            }
        );
        if r.state_activation != "tanh" || r.gate_activation != "sigmoid" {
            d += &format!(", {}/{}", r.state_activation, r.gate_activation);
        }
        if gru && r.reset_gate_mode != "after-multiplication" {
            d += &format!(", reset gate {}", r.reset_gate_mode);
        }
        d
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.input_weights)
            .into_iter()
            .chain(param_tensor(&mut self.recurrent_weights))
            .chain(param_tensor(&mut self.bias))
            .chain(self.hidden_state.as_mut())
            .chain(self.cell_state.as_mut())
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.input_weights)
            + param_numel(&self.recurrent_weights)
            + param_numel(&self.bias)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.input_weights.is_some() && self.recurrent_weights.is_some()
    }

    /// The input's elements are the features; the output has `hidden` per direction.
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        let r = self;
        let n = x.numel();
        shape::check_channels(&mut r.input_size, "InputSize", n, ctx)?;
        if let Some(w) = &r.input_weights
            && w.value.shape.get(1) != Some(&n)
        {
            return Err(ctx.shape(
                "input size",
                format!("InputWeights {:?}", w.value.shape),
                format!("{n} features"),
            ));
        }
        Ok(Some(Shape::features(
            r.hidden * if r.bidirectional { 2 } else { 1 },
        )))
    }
}

/// LSTM, BiLSTM and GRU classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    if let Some(reason) = state_ports(short, f) {
        return super::unsupported(reason);
    }
    Ok(Some(match short {
        "LSTMLayer" => LayerKind::Lstm(recurrent(f, 4, false)?),
        "BiLSTMLayer" => LayerKind::Lstm(recurrent(f, 4, true)?),
        "GRULayer" => LayerKind::Gru(recurrent(f, 3, false)?),
        "LSTMProjectedLayer" => LayerKind::LstmProjected(projected(f, 4)?),
        "GRUProjectedLayer" => LayerKind::GruProjected(projected(f, 3)?),
        _ => return Ok(None),
    }))
}

fn recurrent(f: &Fields, gates: usize, bidirectional: bool) -> Result<Recurrent, NetError> {
    recurrent_cols(f, gates, bidirectional, None)
}

/// A recurrent layer; `cols` overrides the column counts of `InputWeights` and
/// `RecurrentWeights` (the projector sizes of a projected layer; input size and hidden size
/// otherwise).
fn recurrent_cols(
    f: &Fields,
    gates: usize,
    bidirectional: bool,
    cols: Option<(usize, usize)>,
) -> Result<Recurrent, NetError> {
    let hidden = f.usize("NumHiddenUnits")?;
    let dirs = if bidirectional { 2 } else { 1 };
    let rows = gates * hidden * dirs;
    let input_weights = f.param("InputWeights")?;
    let input_size = match (f.opt_usize("InputSize")?, &input_weights) {
        (Some(n), _) => n,
        (None, Some(w)) => w.value.dims.get(1).copied().unwrap_or(0),
        (None, None) => 0,
    };
    let return_sequence = match f.string("OutputMode") {
        Some(m) => m == "sequence",
        None => f.flag("ReturnSequence").unwrap_or(true),
    };
    let (in_cols, rec_cols) = cols.unwrap_or((input_size, hidden));
    let input_weights = match input_weights {
        Some(p) => Some(p.with(
            layout::matrix(p.value, rows, in_cols).map_err(|e| f.layout_err("InputWeights", e))?,
        )),
        None => None,
    };
    let recurrent_weights = match f.param("RecurrentWeights")? {
        Some(p) => Some(
            p.with(
                layout::matrix(p.value, rows, rec_cols)
                    .map_err(|e| f.layout_err("RecurrentWeights", e))?,
            ),
        ),
        None => None,
    };
    let bias = match f.param("Bias")? {
        // GRU with ResetGateMode 'recurrent-bias-after-multiplication' stores two bias blocks.
        Some(p) if p.value.numel() == rows || p.value.numel() == 2 * rows => Some(
            p.with(layout::vector(p.value, p.value.numel()).map_err(|e| f.layout_err("Bias", e))?),
        ),
        Some(p) => {
            return Err(f.err(
                "Bias",
                format!("{rows} elements"),
                format!(
                    "{} {}",
                    p.value.class_name(),
                    layout::dims_str(&p.value.dims)
                ),
            ));
        }
        None => None,
    };
    // GRU: MATLAB's default (and the behaviour of files without the property) is
    // 'after-multiplication'; a 6H bias can only be 'recurrent-bias-after-multiplication'.
    let reset_gate_mode = if gates == 3 {
        match f.string("ResetGateMode") {
            Some(m) => m,
            None if bias.as_ref().is_some_and(|b| b.value.numel() == 2 * rows) => {
                "recurrent-bias-after-multiplication".into()
            }
            None => "after-multiplication".into(),
        }
    } else {
        String::new()
    };
    if let Some(b) = &bias {
        let two = reset_gate_mode == "recurrent-bias-after-multiplication";
        let want = if two { 2 * rows } else { rows };
        if b.value.numel() != want {
            return Err(f.err(
                "Bias",
                format!("{want} elements (ResetGateMode '{reset_gate_mode}')"),
                format!("{} elements", b.value.numel()),
            ));
        }
    }
    let state = |name: &str| -> Result<Option<Tensor>, NetError> {
        match f.param(name)? {
            None => Ok(None),
            Some(p) => layout::vector(p.value, hidden * dirs)
                .map(Some)
                .map_err(|e| f.layout_err(name, e)),
        }
    };
    let hidden_state = state("HiddenState")?;
    let cell_state = if gates == 4 {
        state("CellState")?
    } else {
        None
    };
    Ok(Recurrent {
        hidden,
        input_size,
        return_sequence,
        bidirectional,
        reset_gate_mode,
        hidden_state,
        cell_state,
        state_activation: f
            .string("StateActivationFunction")
            .unwrap_or_else(|| "tanh".into()),
        gate_activation: f
            .string("GateActivationFunction")
            .unwrap_or_else(|| "sigmoid".into()),
        input_weights,
        recurrent_weights,
        bias,
    })
}

/// A projected recurrent layer (`lstmProjectedLayer`, `gruProjectedLayer`).
///
/// MATLAB's documentation: a projected layer replaces each multiplication `W x` by
/// `W Q Qᵀ x` and stores the projector `Q` and `W' = W Q` instead of `W`. So the layer is the
/// plain LSTM/GRU (equations in `model::ops::recurrent`) with the weights
///
/// ```text
/// W = InputWeights · InputProjectorᵀ      [G*H, IPS] · [IPS, C] = [G*H, C]
/// R = RecurrentWeights · OutputProjectorᵀ [G*H, OPS] · [OPS, H] = [G*H, H]
/// ```
///
/// (`G` gates, `H = NumHiddenUnits`, `C = InputSize`, `IPS = InputProjectorSize`,
/// `OPS = OutputProjectorSize`): the hidden and cell states keep `H` units and the layer outputs
/// `H` channels, as the stored sizes confirm (kantika-soc-lstm: `InputWeights` 1024x3,
/// `InputProjector` 3x3, `RecurrentWeights` 1024x11, `OutputProjector` 256x11, `HiddenState`
/// 256x1, and the next layer's `InputSize` is 256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projected {
    /// The layer with its stored factors: `input_weights` `[G*H, IPS]`, `recurrent_weights`
    /// `[G*H, OPS]`; `input_size` is `C`.
    pub rnn: Recurrent,
    pub input_projector_size: usize,
    pub output_projector_size: usize,
    /// `InputProjector` `[C, IPS]` (MATLAB's `InputSize x InputProjectorSize`, row-major).
    pub input_projector: Option<Param>,
    /// `OutputProjector` `[H, OPS]` (MATLAB's `NumHiddenUnits x OutputProjectorSize`, row-major).
    pub output_projector: Option<Param>,
}

/// LSTM projected names. **[UNVERIFIED]** stems MATLAB gives unnamed projected layers.
pub const LSTM_PROJECTED: Names = Names {
    kind: "LstmProjected",
    stem: "lstm",
};
pub const GRU_PROJECTED: Names = Names {
    kind: "GruProjected",
    stem: "gru",
};

impl Projected {
    pub(crate) fn describe(&self, gru: bool) -> String {
        format!(
            "projected {}, input projector size {}, output projector size {}",
            self.rnn.describe(gru),
            self.input_projector_size,
            self.output_projector_size
        )
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = self.rnn.tensors_mut();
        v.extend(param_tensor(&mut self.input_projector));
        v.extend(param_tensor(&mut self.output_projector));
        v
    }

    pub(crate) fn learnables(&self) -> usize {
        self.rnn.learnables()
            + param_numel(&self.input_projector)
            + param_numel(&self.output_projector)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.rnn.is_trained() && self.input_projector.is_some() && self.output_projector.is_some()
    }

    /// The input's elements are the features (`InputSize`); the output has `NumHiddenUnits`.
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        let n = x.numel();
        shape::check_channels(&mut self.rnn.input_size, "InputSize", n, ctx)?;
        if let Some(q) = &self.input_projector
            && q.value.shape.first() != Some(&n)
        {
            return Err(ctx.shape(
                "input size",
                format!("InputProjector {:?}", q.value.shape),
                format!("{n} features"),
            ));
        }
        Ok(Some(Shape::features(self.rnn.hidden)))
    }
}

/// `LSTMProjectedLayer` (4 gates) or `GRUProjectedLayer` (3 gates).
fn projected(f: &Fields, gates: usize) -> Result<Projected, NetError> {
    let hidden = f.usize("NumHiddenUnits")?;
    let ips = f.usize("InputProjectorSize")?;
    let ops = f.usize("OutputProjectorSize")?;
    let mut rnn = recurrent_cols(f, gates, false, Some((ips, ops)))?;
    let input_projector = f.param("InputProjector")?;
    rnn.input_size = match (f.opt_usize("InputSize")?, &input_projector) {
        (Some(n), _) => n,
        (None, Some(q)) => q.value.dims.first().copied().unwrap_or(0),
        (None, None) => 0,
    };
    let input_projector = match input_projector {
        Some(p) => Some(
            p.with(
                layout::projector(p.value, rnn.input_size, ips)
                    .map_err(|e| f.layout_err("InputProjector", e))?,
            ),
        ),
        None => None,
    };
    let output_projector = match f.param("OutputProjector")? {
        Some(p) => Some(
            p.with(
                layout::projector(p.value, hidden, ops)
                    .map_err(|e| f.layout_err("OutputProjector", e))?,
            ),
        ),
        None => None,
    };
    Ok(Projected {
        rnn,
        input_projector_size: ips,
        output_projector_size: ops,
        input_projector,
        output_projector,
    })
}

/// Why a recurrent layer with state ports (`HasStateInputs`/`HasStateOutputs` true: the hidden
/// and cell states as extra inputs or outputs) is kept unsupported.
fn state_ports(short: &str, f: &Fields) -> Option<String> {
    let recurrent = matches!(
        short,
        "LSTMLayer" | "BiLSTMLayer" | "GRULayer" | "LSTMProjectedLayer" | "GRUProjectedLayer"
    );
    let ports: Vec<&str> = ["HasStateInputs", "HasStateOutputs"]
        .into_iter()
        .filter(|p| f.flag(p) == Some(true))
        .collect();
    (recurrent && !ports.is_empty()).then(|| {
        format!(
            "{short} with {} true (states as extra ports) is not supported",
            ports.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mat::value::{NumData, NumericArray, StructArray, Value};
    use crate::net::error::Ctx;

    fn fields(s: &StructArray) -> Fields<'_> {
        Fields::new(Ctx::new("net", "lstm", "nnet.cnn.layer.LSTMProjectedLayer")).with_struct(s)
    }

    fn num(v: f64) -> Value {
        Value::Numeric(NumericArray::new(vec![1, 1], NumData::F64(vec![v])))
    }

    #[test]
    fn state_ports_are_refused_by_name() {
        let s = StructArray {
            dims: vec![1, 1],
            fields: vec!["HasStateInputs".into(), "HasStateOutputs".into()],
            elements: vec![vec![num(0.0), num(1.0)]],
        };
        let why = state_ports("LSTMProjectedLayer", &fields(&s)).unwrap();
        assert!(why.contains("HasStateOutputs") && !why.contains("HasStateInputs"));
        assert!(state_ports("FullyConnectedLayer", &fields(&s)).is_none());
        let none = StructArray {
            dims: vec![1, 1],
            fields: vec!["HasStateInputs".into()],
            elements: vec![vec![num(0.0)]],
        };
        assert!(state_ports("GRUProjectedLayer", &fields(&none)).is_none());
    }
}
