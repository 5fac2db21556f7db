//! LSTM and GRU layers in `model.py`.

use super::{Cx, Emit, py_str};
use crate::export::{ExportError, layer_err, multiplied_out, param};
use crate::net::layer::{Projected, Recurrent};

const RECURRENT: &str = r#"
class MatlabRecurrent(nn.Module):
    """lstmLayer / bilstmLayer / gruLayer on [N, C, T]: MATLAB's gate order is PyTorch's (LSTM
    i, f, g, o; GRU r, z, n), the stored HiddenState/CellState are the initial states, and
    OutputMode 'last' is the last time step of the output sequence."""

    def __init__(self, kind, input_size, hidden, bidirectional, last):
        super().__init__()
        d = 2 if bidirectional else 1
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(input_size, hidden, batch_first=True, bidirectional=bidirectional)
        self.register_buffer("h0", torch.zeros(d, 1, hidden))
        if kind == "lstm":
            self.register_buffer("c0", torch.zeros(d, 1, hidden))
        self.kind, self.last = kind, last

    def forward(self, x):
        n = x.shape[0]
        h0 = self.h0.expand(-1, n, -1).contiguous()
        if self.kind == "lstm":
            state = (h0, self.c0.expand(-1, n, -1).contiguous())
        else:
            state = h0
        y, _ = self.rnn(x.transpose(1, 2), state)
        y = y.transpose(1, 2)
        return y[:, :, -1] if self.last else y
"#;

/// lstmLayer / bilstmLayer (`lstm`) or gruLayer through the MatlabRecurrent helper.
pub(super) fn recurrent(cx: &mut Cx, r: &Recurrent, lstm: bool) -> Result<Emit, ExportError> {
    let l = cx.l;
    if !(r.state_activation == "tanh" && r.gate_activation == "sigmoid") {
        return Err(layer_err(
            l,
            format!(
                "PyTorch's recurrent layers compute tanh/sigmoid only, not '{}'/'{}'",
                r.state_activation, r.gate_activation
            ),
        ));
    }
    if r.reset_gate_mode == "before-multiplication" {
        return Err(layer_err(
            l,
            "nn.GRU applies the reset gate after the recurrent multiplication: \
             ResetGateMode 'before-multiplication' cannot be exported to PyTorch",
        ));
    }
    let input_size = param(l, &r.input_weights, "InputWeights")?
        .shape
        .get(1)
        .copied()
        .unwrap_or(0);
    cx.need(RECURRENT);
    Ok(cx.module(
        format!(
            "MatlabRecurrent({}, {input_size}, {}, bidirectional={}, last={})",
            py_str(if lstm { "lstm" } else { "gru" }),
            r.hidden,
            if r.bidirectional { "True" } else { "False" },
            if r.return_sequence { "False" } else { "True" }
        ),
        false,
    ))
}

/// lstmProjectedLayer / gruProjectedLayer: `nn.LSTM`/`nn.GRU` with the factors multiplied out
/// (`export::recurrent::multiplied_out`; `nn.LSTM(proj_size=...)` projects the output, which is
/// not MATLAB's layer). The state dict holds the products, so fine-tuning in PyTorch trains the
/// full matrices, not the factors.
pub(super) fn projected(cx: &mut Cx, p: &Projected, lstm: bool) -> Result<Emit, ExportError> {
    let r = multiplied_out(cx.l, p)?;
    recurrent(cx, &r, lstm)
}
