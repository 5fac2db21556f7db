//! LSTM, BiLSTM and GRU layers as Burn ops, on sequence activations `[N, C, 1, T]`.
//!
//! The cell is written with tensor ops (one matmul for the inputs of all time steps, then a loop
//! over time), on MATLAB's weights as they are stored, so it runs on every backend and trains.
//!
//! MATLAB's equations (gate blocks in stored order):
//! - LSTM (i, f, g, o): `c = f * c + i * g`, `h = o * state(c)`, with `i, f, o = gate(.)` and
//!   `g = state(.)`.
//! - GRU (r, z, h~): `r, z = gate(W x + b + R h)`, candidate `h~ = state(W x + b + r * (R h))`
//!   ('after-multiplication'), `state(W x + b + R (r * h))` ('before-multiplication') or
//!   `state(W x + b + r * (R h + bR))` ('recurrent-bias-after-multiplication'), and
//!   `h = (1 - z) * h~ + z * h_prev`.
//!
//! A BiLSTM runs the second half of the weights backward in time and concatenates
//! `[h_forward; h_backward]` per time step. OutputMode 'last' returns the last time step of the
//! output sequence (for a BiLSTM, the backward half is the state after the last input only).

use super::{Op, err, param, set_param, tensor};
use crate::model::ModelError;
use crate::net::layer::{self, Layer};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation;

pub(crate) const LSTM: usize = 0;
pub(crate) const GRU: usize = 1;

/// `StateActivationFunction` codes.
const TANH: usize = 0;
const SOFTSIGN: usize = 1;
/// `GateActivationFunction` codes.
const SIGMOID: usize = 0;
const HARD_SIGMOID: usize = 1;
/// GRU `ResetGateMode` codes.
const AFTER: usize = 0;
const BEFORE: usize = 1;
const RECURRENT_BIAS_AFTER: usize = 2;

/// A recurrent layer. Weights in MATLAB's layout: input `[G*H*D, C]`, recurrent `[G*H*D, H]`,
/// bias `[G*H*D]` (`[2*G*H]` for a GRU with recurrent biases); initial states `[H*D]` (frozen).
#[derive(Module, Debug)]
pub struct Rnn {
    pub input_weights: Param<Tensor<2>>,
    pub recurrent_weights: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
    pub hidden_state: Param<Tensor<1>>,
    pub cell_state: Param<Tensor<1>>,
    /// [`LSTM`] or [`GRU`].
    pub cell: usize,
    pub hidden: usize,
    pub bidirectional: bool,
    pub return_sequence: bool,
    pub state_activation: usize,
    pub gate_activation: usize,
    pub reset_gate_mode: usize,
}

/// Activation names MATLAB offers → codes; anything else is refused with the layer named.
pub(crate) fn activation_codes(r: &layer::Recurrent) -> Result<[usize; 2], String> {
    let state = match r.state_activation.as_str() {
        "tanh" => TANH,
        "softsign" => SOFTSIGN,
        other => {
            return Err(format!(
                "StateActivationFunction '{other}' is not supported"
            ));
        }
    };
    let gate = match r.gate_activation.as_str() {
        "sigmoid" => SIGMOID,
        "hard-sigmoid" => HARD_SIGMOID,
        other => return Err(format!("GateActivationFunction '{other}' is not supported")),
    };
    Ok([state, gate])
}

pub(crate) fn reset_code(mode: &str) -> Result<usize, String> {
    Ok(match mode {
        "" | "after-multiplication" => AFTER,
        "before-multiplication" => BEFORE,
        "recurrent-bias-after-multiplication" => RECURRENT_BIAS_AFTER,
        other => return Err(format!("ResetGateMode '{other}' is not supported")),
    })
}

pub(super) fn lstm(l: &Layer, r: &layer::Recurrent, device: &Device) -> Result<Op, ModelError> {
    Ok(Op::Rnn(Rnn::build(l, r, LSTM, device)?))
}

pub(super) fn gru(l: &Layer, r: &layer::Recurrent, device: &Device) -> Result<Op, ModelError> {
    Ok(Op::Rnn(Rnn::build(l, r, GRU, device)?))
}

impl Rnn {
    /// Copies the weights into `d`, the description of the layer.
    pub(super) fn write_back(&self, d: &mut layer::Recurrent) {
        set_param(&mut d.input_weights, self.input_weights.val());
        set_param(&mut d.recurrent_weights, self.recurrent_weights.val());
        set_param(&mut d.bias, self.bias.val());
        // The initial states are frozen parameters of the record: a saved network's description
        // holds their shapes only, so they are written back like the weights.
        for (dst, t) in [
            (&mut d.hidden_state, self.hidden_state.val()),
            (&mut d.cell_state, self.cell_state.val()),
        ] {
            if let Some(dst) = dst {
                dst.data = super::tensor_values(t);
            }
        }
    }

    pub fn build(
        l: &Layer,
        r: &layer::Recurrent,
        cell: usize,
        device: &Device,
    ) -> Result<Rnn, ModelError> {
        Self::build_with(l, r, cell, r.hidden, device)
    }

    /// [`Rnn::build`] with recurrent weights of `rec_cols` columns (the output projector size
    /// of a projected layer, the hidden size otherwise).
    fn build_with(
        l: &Layer,
        r: &layer::Recurrent,
        cell: usize,
        rec_cols: usize,
        device: &Device,
    ) -> Result<Rnn, ModelError> {
        let [state_activation, gate_activation] = activation_codes(r).map_err(|m| err(l, m))?;
        let reset_gate_mode = if cell == GRU {
            reset_code(&r.reset_gate_mode).map_err(|m| err(l, m))?
        } else {
            AFTER
        };
        let gates = if cell == LSTM { 4 } else { 3 };
        let d = r.directions();
        let h = r.hidden;
        if cell == GRU && d != 1 {
            return Err(err(l, "bidirectional GRU layers do not exist in MATLAB"));
        }
        let w = param::<2>(l, &r.input_weights, "InputWeights", device)?;
        let rw = param::<2>(l, &r.recurrent_weights, "RecurrentWeights", device)?;
        let b = param::<1>(l, &r.bias, "Bias", device)?;
        let rows = gates * h * d;
        let [wr, _] = w.dims();
        let [rr, rc] = rw.dims();
        if wr != rows || rr != rows || rc != rec_cols {
            return Err(err(
                l,
                format!(
                    "weights of shapes {:?} and {:?} do not fit {gates} gates of {h} hidden units{}",
                    w.dims(),
                    rw.dims(),
                    if d == 2 { " in 2 directions" } else { "" }
                ),
            ));
        }
        let want_bias = if reset_gate_mode == RECURRENT_BIAS_AFTER {
            2 * rows
        } else {
            rows
        };
        if b.dims()[0] != want_bias {
            return Err(err(
                l,
                format!("Bias has {} values, expected {want_bias}", b.dims()[0]),
            ));
        }
        let state = |t: &Option<layer::Tensor>, what: &str| -> Result<Tensor<1>, ModelError> {
            match t {
                Some(t) if t.numel() == h * d => tensor::<1>(l, t, what, device),
                Some(t) => Err(err(
                    l,
                    format!("{what} has {} values, expected {}", t.numel(), h * d),
                )),
                None => Ok(Tensor::zeros([h * d], device)),
            }
        };
        let frozen = |t: Tensor<1>| Param::from_tensor(t).set_require_grad(false);
        Ok(Rnn {
            input_weights: w,
            recurrent_weights: rw,
            bias: b,
            hidden_state: frozen(state(&r.hidden_state, "HiddenState")?),
            cell_state: frozen(state(&r.cell_state, "CellState")?),
            cell,
            hidden: h,
            bidirectional: d == 2,
            return_sequence: r.return_sequence,
            state_activation,
            gate_activation,
            reset_gate_mode,
        })
    }

    fn state_fn<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.state_activation {
            SOFTSIGN => x.clone() / x.abs().add_scalar(1.0),
            _ => activation::tanh(x),
        }
    }

    fn gate_fn<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.gate_activation {
            // MATLAB's hard sigmoid: 0.2 x + 0.5 clipped to [0, 1].
            HARD_SIGMOID => x.mul_scalar(0.2).add_scalar(0.5).clamp(0.0, 1.0),
            _ => activation::sigmoid(x),
        }
    }

    /// `[N, C, 1, T]` → `[N, H*D, 1, T]` ('sequence') or `[N, H*D, 1, 1]` ('last').
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, self.input_weights.val(), self.recurrent_weights.val())
    }

    /// [`Rnn::forward`] with the input weights `w` `[G*H*D, C]` and recurrent weights `r`
    /// `[G*H*D, H]` given.
    fn forward_with(&self, x: Tensor<4>, w: Tensor<2>, r: Tensor<2>) -> Tensor<4> {
        let [n, c, _, t] = x.dims();
        // [N, T, C] for one matmul over all time steps.
        let xs = x.reshape([n, c, t]).swap_dims(1, 2);
        let dirs = if self.bidirectional { 2 } else { 1 };
        let outs: Vec<Tensor<3>> = (0..dirs).map(|d| self.direction(&xs, d, &w, &r)).collect();
        let y = Tensor::cat(outs, 1); // [N, H*D, T]
        let [_, hd, _] = y.dims();
        if self.return_sequence {
            y.reshape([n, hd, 1, t])
        } else {
            y.slice([0..n, 0..hd, t - 1..t]).reshape([n, hd, 1, 1])
        }
    }

    /// One direction over `[N, T, C]`: the hidden states `[N, H, T]` in time order.
    fn direction(&self, xs: &Tensor<3>, d: usize, w: &Tensor<2>, r: &Tensor<2>) -> Tensor<3> {
        let [n, t, c] = xs.dims();
        let h = self.hidden;
        let gates = if self.cell == LSTM { 4 } else { 3 };
        let g = gates * h;
        let w = w.clone().slice([d * g..(d + 1) * g, 0..c]); // [G*H, C]
        let r = r.clone().slice([d * g..(d + 1) * g, 0..h]); // [G*H, H]
        let bias = self.bias.val();
        let b_in = bias.clone().narrow(0, d * g, g);
        // Input contributions of every time step: [N, T, G*H].
        let xw = xs
            .clone()
            .reshape([n * t, c])
            .matmul(w.transpose())
            .add(b_in.unsqueeze::<2>())
            .reshape([n, t, g]);
        let rt = r.transpose(); // [H, G*H]
        let expand = |s: Tensor<1>| s.narrow(0, d * h, h).unsqueeze::<2>().repeat_dim(0, n);
        let mut hs = expand(self.hidden_state.val());
        let mut cs = expand(self.cell_state.val());
        let mut outs: Vec<Option<Tensor<2>>> = vec![None; t];
        let steps: Vec<usize> = if d == 0 {
            (0..t).collect()
        } else {
            (0..t).rev().collect()
        };
        let block = |x: &Tensor<2>, k: usize| x.clone().slice([0..n, k * h..(k + 1) * h]);
        for step in steps {
            let xg = xw
                .clone()
                .slice([0..n, step..step + 1, 0..g])
                .reshape([n, g]);
            if self.cell == LSTM {
                let z = xg + hs.clone().matmul(rt.clone());
                let i = self.gate_fn(block(&z, 0));
                let f = self.gate_fn(block(&z, 1));
                let cand = self.state_fn(block(&z, 2));
                let o = self.gate_fn(block(&z, 3));
                cs = f * cs + i * cand;
                hs = o * self.state_fn(cs.clone());
            } else {
                let rh_all = hs.clone().matmul(rt.clone().slice([0..h, 0..2 * h]));
                let rz = block(&xg, 0) + block(&rh_all, 0);
                let zz = block(&xg, 1) + block(&rh_all, 1);
                let (rz, zz) = if self.reset_gate_mode == RECURRENT_BIAS_AFTER {
                    let br = bias.clone().narrow(0, g, g).unsqueeze::<2>();
                    (
                        rz + br.clone().slice([0..1, 0..h]),
                        zz + br.slice([0..1, h..2 * h]),
                    )
                } else {
                    (rz, zz)
                };
                let reset = self.gate_fn(rz);
                let update = self.gate_fn(zz);
                let rc = rt.clone().slice([0..h, 2 * h..3 * h]); // [H, H]
                let recur = match self.reset_gate_mode {
                    BEFORE => (reset * hs.clone()).matmul(rc),
                    RECURRENT_BIAS_AFTER => {
                        let bh = bias.clone().narrow(0, g + 2 * h, h).unsqueeze::<2>();
                        reset * (hs.clone().matmul(rc) + bh)
                    }
                    _ => reset * hs.clone().matmul(rc),
                };
                let cand = self.state_fn(block(&xg, 2) + recur);
                hs = update.clone().neg().add_scalar(1.0) * cand + update * hs;
            }
            outs[step] = Some(hs.clone());
        }
        let outs: Vec<Tensor<2>> = outs
            .into_iter()
            .map(|o| o.expect("every step ran"))
            .collect();
        Tensor::stack(outs, 2)
    }
}

/// A projected LSTM/GRU (`lstmProjectedLayer`, `gruProjectedLayer`): the plain layer with the
/// factored weights of MATLAB's documentation (`net::layers::recurrent::Projected`),
/// `W = InputWeights · InputProjectorᵀ` and `R = RecurrentWeights · OutputProjectorᵀ`,
/// multiplied out once per forward pass, so the four factors are what trains.
#[derive(Module, Debug)]
pub struct RnnProjected {
    /// `input_weights` `[G*H, IPS]`, `recurrent_weights` `[G*H, OPS]`.
    pub rnn: Rnn,
    /// `[C, IPS]`.
    pub input_projector: Param<Tensor<2>>,
    /// `[H, OPS]`.
    pub output_projector: Param<Tensor<2>>,
}

pub(super) fn lstm_projected(
    l: &Layer,
    p: &layer::Projected,
    device: &Device,
) -> Result<Op, ModelError> {
    Ok(Op::RnnProjected(RnnProjected::build(l, p, LSTM, device)?))
}

pub(super) fn gru_projected(
    l: &Layer,
    p: &layer::Projected,
    device: &Device,
) -> Result<Op, ModelError> {
    Ok(Op::RnnProjected(RnnProjected::build(l, p, GRU, device)?))
}

impl RnnProjected {
    pub fn build(
        l: &Layer,
        p: &layer::Projected,
        cell: usize,
        device: &Device,
    ) -> Result<RnnProjected, ModelError> {
        let (h, ips, ops) = (
            p.rnn.hidden,
            p.input_projector_size,
            p.output_projector_size,
        );
        let rnn = Rnn::build_with(l, &p.rnn, cell, ops, device)?;
        let qi = param::<2>(l, &p.input_projector, "InputProjector", device)?;
        let qo = param::<2>(l, &p.output_projector, "OutputProjector", device)?;
        let [_, wc] = rnn.input_weights.dims();
        let [qr, qc] = qi.dims();
        if wc != ips || qc != ips || qo.dims() != [h, ops] || qr == 0 {
            return Err(err(
                l,
                format!(
                    "InputWeights {:?}, InputProjector {:?} and OutputProjector {:?} do not fit \
                     InputProjectorSize {ips}, OutputProjectorSize {ops} and {h} hidden units",
                    rnn.input_weights.dims(),
                    qi.dims(),
                    qo.dims()
                ),
            ));
        }
        Ok(RnnProjected {
            rnn,
            input_projector: qi,
            output_projector: qo,
        })
    }

    /// The input size `C`.
    pub fn input_size(&self) -> usize {
        self.input_projector.dims()[0]
    }

    /// `[N, C, 1, T]` → `[N, H, 1, T]` ('sequence') or `[N, H, 1, 1]` ('last').
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let w = self
            .rnn
            .input_weights
            .val()
            .matmul(self.input_projector.val().transpose());
        let r = self
            .rnn
            .recurrent_weights
            .val()
            .matmul(self.output_projector.val().transpose());
        self.rnn.forward_with(x, w, r)
    }

    /// Copies the factors and states into `d`, the description of the layer.
    pub(super) fn write_back(&self, d: &mut layer::Projected) {
        self.rnn.write_back(&mut d.rnn);
        set_param(&mut d.input_projector, self.input_projector.val());
        set_param(&mut d.output_projector, self.output_projector.val());
    }
}
