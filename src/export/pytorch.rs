//! PyTorch export: a readable `model.py` (an `nn.Module` with one attribute per MATLAB layer and a
//! `forward` that follows the graph), its `state_dict` as `weights.safetensors`, and the same
//! state dict as `model.pt` (what `torch.save(model.state_dict())` writes).

use super::{ExportError, ExportOptions, Plan, bn_epsilon, concat_axis, float_lit, pads, pickle};
use crate::net::layer::{Activation, LayerKind, Network, Padding};
use std::collections::HashMap;
use std::fmt::Write;

pub fn export(net: &Network, opts: &ExportOptions) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    let plan = Plan::new(net, opts)?;
    let tensors = plan.state_dict()?;
    let source = model_py(&plan)?;
    Ok(vec![
        ("model.py".into(), source.into_bytes()),
        ("weights.safetensors".into(), safetensors(&plan, &tensors)?),
        ("model.pt".into(), pickle::torch_file("model", &tensors)?),
    ])
}

/// The state dict as safetensors, with the network's description in the metadata.
pub(crate) fn safetensors(
    plan: &Plan,
    tensors: &[(String, super::Blob)],
) -> Result<Vec<u8>, ExportError> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.bytes()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((k, t), b) in tensors.iter().zip(&bytes) {
        let dtype = match t.data {
            super::BlobData::F32(_) => Dtype::F32,
            super::BlobData::I64(_) => Dtype::I64,
        };
        let v = TensorView::new(dtype, t.shape.clone(), b)
            .map_err(|e| ExportError::Unsupported(format!("safetensors: {k}: {e}")))?;
        views.push((k.clone(), v));
    }
    let mut meta = HashMap::new();
    meta.insert("producer".to_string(), "matcnn".to_string());
    meta.insert("matlab_variable".to_string(), plan.net.variable.clone());
    if !plan.net.classes.is_empty() {
        meta.insert(
            "classes".to_string(),
            serde_json::to_string(&plan.net.classes).expect("strings serialize"),
        );
    }
    safetensors::serialize(views, Some(meta))
        .map_err(|e| ExportError::Unsupported(format!("safetensors: {e}")))
}

/// The last part of a MATLAB class name (`nnet.cnn.layer.ReLULayer` → `ReLULayer`).
pub(crate) fn short_class(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn tuple2(v: [usize; 2]) -> String {
    format!("({}, {})", v[0], v[1])
}

fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// `F.pad` argument `(left, right, top, bottom)`.
fn fpad(p: Padding) -> String {
    format!("({}, {}, {}, {})", p.left, p.right, p.top, p.bottom)
}

fn symmetric(p: Padding) -> bool {
    p.top == p.bottom && p.left == p.right
}

fn zero(p: Padding) -> bool {
    p.top + p.bottom + p.left + p.right == 0
}

const HEADER_HELPERS: &str = r#"
class InputNormalization(nn.Module):
    """MATLAB's input normalization as (x - shift) * scale (buffers saved with the weights)."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    def forward(self, x):
        return (x - self.shift) * self.scale
"#;

const ADDITION: &str = r#"
class Addition(nn.Module):
    """additionLayer: element-wise sum of the inputs."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
"#;

const MULTIPLICATION: &str = r#"
class Multiplication(nn.Module):
    """multiplicationLayer: element-wise product of the inputs."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out
"#;

const CONCATENATION: &str = r#"
class Concatenation(nn.Module):
    """depthConcatenationLayer / concatenationLayer along an NCHW axis."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)
"#;

const FLATTEN: &str = r#"
class MatlabFlatten(nn.Module):
    """flattenLayer: MATLAB flattens H x W x C column-major (h fastest), i.e. NCWH row-major."""

    def forward(self, x):
        return x.transpose(2, 3).flatten(1)
"#;

const LRN: &str = r#"
class MatlabLRN(nn.Module):
    """crossChannelNormalizationLayer with an even window: MATLAB's window takes (size - 1) // 2
    channels before and size // 2 after (nn.LocalResponseNorm does the opposite)."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, (self.size - 1) // 2, self.size // 2))
        mean = F.avg_pool3d(sq, (self.size, 1, 1), stride=1).squeeze(1)
        return x / (self.k + self.alpha * mean).pow(self.beta)
"#;

const AVG_EXCLUDE: &str = r#"
def avg_pool_exclude_padding(pool, x, pad):
    """Average pooling over F.pad(x, pad) that leaves the padding out of the mean."""
    ones = torch.ones_like(x[:, :1])
    return pool(F.pad(x, pad)) / pool(F.pad(ones, pad))
"#;

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

fn model_py(plan: &Plan) -> Result<String, ExportError> {
    let net = plan.net;
    let ids = &plan.idents;
    let mut init = String::new();
    let mut fwd = String::new();
    let mut helpers: Vec<&str> = Vec::new();
    let need = |h: &'static str, helpers: &mut Vec<&str>| {
        if !helpers.contains(&h) {
            helpers.push(h);
        }
    };
    // Python expression of each layer's output.
    let mut var: Vec<String> = vec![String::new(); net.layers.len()];
    for (i, l) in net.layers.iter().enumerate() {
        let id = &ids[i];
        let cls = short_class(&l.class);
        let named = if *id == l.name {
            format!("# {cls}")
        } else {
            format!("# '{}' ({cls})", l.name)
        };
        // Input k as a Python expression, lifted to [N, C, 1, 1] when `four`.
        let arg = |k: usize, four: bool| -> String {
            let v = var[l.inputs[k]].clone();
            if four && plan.in_rank(i, k) == 2 {
                format!("{v}[:, :, None, None]")
            } else {
                v
            }
        };
        let mut module = |decl: String, call: String| {
            writeln!(init, "        self.{id} = {decl}  {named}").unwrap();
            writeln!(fwd, "        {id} = {call}").unwrap();
        };
        match &l.kind {
            LayerKind::ImageInput { .. }
            | LayerKind::FeatureInput { .. }
            | LayerKind::SequenceInput { .. } => {
                match &plan.norm {
                    Some(n) => {
                        let shape: Vec<String> = n.shape.iter().map(|d| d.to_string()).collect();
                        module(
                            format!("InputNormalization(({}))", shape.join(", ")),
                            format!("self.{id}(x)"),
                        );
                        var[i] = id.clone();
                    }
                    None => {
                        writeln!(
                            init,
                            "        # {}: input, normalization not included (apply it to x yourself)",
                            l.name
                        )
                        .unwrap();
                        var[i] = "x".into();
                    }
                }
                continue;
            }
            LayerKind::ClassificationOutput { .. } | LayerKind::RegressionOutput => {
                writeln!(
                    init,
                    "        # {}: {cls} (training loss only, not needed for inference)",
                    l.name
                )
                .unwrap();
                var[i] = var[l.inputs[0]].clone();
                continue;
            }
            LayerKind::Conv2d(c) => {
                let p = pads(&c.padding);
                let x = arg(0, true);
                let (padding, x) = if symmetric(p) {
                    (tuple2([p.top, p.left]), x)
                } else {
                    ("0".into(), format!("F.pad({x}, {})", fpad(p)))
                };
                let mut decl = format!(
                    "nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={padding}",
                    c.in_channels,
                    c.filters,
                    tuple2(c.filter),
                    tuple2(c.stride)
                );
                if c.dilation != [1, 1] {
                    write!(decl, ", dilation={}", tuple2(c.dilation)).unwrap();
                }
                if c.groups != 1 {
                    write!(decl, ", groups={}", c.groups).unwrap();
                }
                if c.bias.is_none() {
                    decl.push_str(", bias=False");
                }
                decl.push(')');
                module(decl, format!("self.{id}({x})"));
            }
            LayerKind::ConvTranspose2d(c) => {
                let crop = pads(&c.cropping);
                let mut decl = format!(
                    "nn.ConvTranspose2d({}, {}, kernel_size={}, stride={}",
                    c.in_channels,
                    c.filters,
                    tuple2(c.filter),
                    tuple2(c.stride)
                );
                if c.groups != 1 {
                    write!(decl, ", groups={}", c.groups).unwrap();
                }
                if c.bias.is_none() {
                    decl.push_str(", bias=False");
                }
                decl.push(')');
                let mut call = format!("self.{id}({})", arg(0, true));
                if !zero(crop) {
                    let end = |p: usize| {
                        if p == 0 {
                            String::new()
                        } else {
                            format!("-{p}")
                        }
                    };
                    write!(
                        call,
                        "[:, :, {}:{}, {}:{}]  # MATLAB's cropping",
                        crop.top,
                        end(crop.bottom),
                        crop.left,
                        end(crop.right)
                    )
                    .unwrap();
                }
                module(decl, call);
            }
            LayerKind::Lstm(r) | LayerKind::Gru(r) => {
                let lstm = matches!(l.kind, LayerKind::Lstm(_));
                if !(r.state_activation == "tanh" && r.gate_activation == "sigmoid") {
                    return Err(super::layer_err(
                        l,
                        format!(
                            "PyTorch's recurrent layers compute tanh/sigmoid only, not '{}'/'{}'",
                            r.state_activation, r.gate_activation
                        ),
                    ));
                }
                if r.reset_gate_mode == "before-multiplication" {
                    return Err(super::layer_err(
                        l,
                        "nn.GRU applies the reset gate after the recurrent multiplication: \
                         ResetGateMode 'before-multiplication' cannot be exported to PyTorch",
                    ));
                }
                let input_size = super::param(l, &r.input_weights, "InputWeights")?
                    .shape
                    .get(1)
                    .copied()
                    .unwrap_or(0);
                need(RECURRENT, &mut helpers);
                module(
                    format!(
                        "MatlabRecurrent({}, {input_size}, {}, bidirectional={}, last={})",
                        py_str(if lstm { "lstm" } else { "gru" }),
                        r.hidden,
                        if r.bidirectional { "True" } else { "False" },
                        if r.return_sequence { "False" } else { "True" }
                    ),
                    format!("self.{id}({})", arg(0, false)),
                );
            }
            LayerKind::FullyConnected(f) if plan.in_rank(i, 0) == 3 => {
                let w = super::param(l, &f.weights, "Weights")?;
                let n_in = w.shape.get(1).copied().unwrap_or(0);
                let bias = if f.bias.is_none() { ", bias=False" } else { "" };
                module(
                    format!("nn.Linear({n_in}, {}{bias})", f.outputs),
                    format!(
                        "self.{id}({}.transpose(1, 2)).transpose(1, 2)  # per time step",
                        arg(0, false)
                    ),
                );
            }
            LayerKind::FullyConnected(f) => {
                let w = super::param(l, &f.weights, "Weights")?;
                let n_in = w.shape.get(1).copied().unwrap_or(0);
                let x = if plan.in_rank(i, 0) == 4 {
                    format!("torch.flatten({}, 1)", arg(0, false))
                } else {
                    arg(0, false)
                };
                let bias = if f.bias.is_none() { ", bias=False" } else { "" };
                module(
                    format!("nn.Linear({n_in}, {}{bias})", f.outputs),
                    format!("self.{id}({x})"),
                );
            }
            LayerKind::BatchNorm(b) => {
                let dim = if plan.in_rank(i, 0) == 4 { "2d" } else { "1d" };
                module(
                    format!(
                        "nn.BatchNorm{dim}({}, eps={})",
                        b.channels,
                        float_lit(bn_epsilon(b))
                    ),
                    format!("self.{id}({})", arg(0, false)),
                );
            }
            LayerKind::GroupNorm(g) => {
                module(
                    format!(
                        "nn.GroupNorm({}, {}, eps={})",
                        g.groups,
                        g.channels,
                        float_lit(g.epsilon)
                    ),
                    format!("self.{id}({})", arg(0, true)),
                );
            }
            LayerKind::Lrn(n) => {
                // x / (k + alpha * sum_window(x^2) / n)^beta: MATLAB's formula and PyTorch's.
                let alpha = float_lit(n.alpha);
                let decl = if n.window % 2 == 1 {
                    format!(
                        "nn.LocalResponseNorm({}, alpha={alpha}, beta={}, k={})",
                        n.window,
                        float_lit(n.beta),
                        float_lit(n.k)
                    )
                } else {
                    need(LRN, &mut helpers);
                    format!(
                        "MatlabLRN({}, alpha={alpha}, beta={}, k={})",
                        n.window,
                        float_lit(n.beta),
                        float_lit(n.k)
                    )
                };
                module(decl, format!("self.{id}({})", arg(0, true)));
            }
            LayerKind::Activation(a) => {
                let decl = match *a {
                    Activation::Relu => "nn.ReLU()".to_string(),
                    Activation::LeakyRelu { scale } => {
                        format!("nn.LeakyReLU(negative_slope={})", float_lit(scale))
                    }
                    Activation::ClippedRelu { ceiling } => {
                        format!("nn.Hardtanh(0.0, {})", float_lit(ceiling))
                    }
                    Activation::Elu { alpha } => format!("nn.ELU(alpha={})", float_lit(alpha)),
                    Activation::Tanh => "nn.Tanh()".into(),
                    Activation::Sigmoid => "nn.Sigmoid()".into(),
                    Activation::Swish => "nn.SiLU()".into(),
                    Activation::Gelu { tanh } => format!(
                        "nn.GELU(approximate={})",
                        if tanh { "\"tanh\"" } else { "\"none\"" }
                    ),
                };
                module(decl, format!("self.{id}({})", arg(0, false)));
            }
            LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
                let pd = pads(&p.padding);
                let max = matches!(l.kind, LayerKind::MaxPool2d(_));
                // PyTorch pads symmetrically, at most half the kernel.
                let builtin = symmetric(pd) && pd.top * 2 <= p.size[0] && pd.left * 2 <= p.size[1];
                let padding = if builtin {
                    tuple2([pd.top, pd.left])
                } else {
                    "0".into()
                };
                let decl = if max {
                    format!(
                        "nn.MaxPool2d(kernel_size={}, stride={}, padding={padding})",
                        tuple2(p.size),
                        tuple2(p.stride)
                    )
                } else {
                    format!(
                        "nn.AvgPool2d(kernel_size={}, stride={}, padding={padding}, count_include_pad={})",
                        tuple2(p.size),
                        tuple2(p.stride),
                        if p.count_include_pad { "True" } else { "False" }
                    )
                };
                let x = arg(0, true);
                let call = if builtin {
                    format!("self.{id}({x})")
                } else if max {
                    format!("self.{id}(F.pad({x}, {}, value=float(\"-inf\")))", fpad(pd))
                } else if p.count_include_pad {
                    format!("self.{id}(F.pad({x}, {}))", fpad(pd))
                } else {
                    need(AVG_EXCLUDE, &mut helpers);
                    format!("avg_pool_exclude_padding(self.{id}, {x}, {})", fpad(pd))
                };
                module(decl, call);
            }
            LayerKind::GlobalAvgPool => module(
                "nn.AdaptiveAvgPool2d(1)".into(),
                format!("self.{id}({})", arg(0, true)),
            ),
            LayerKind::GlobalMaxPool => module(
                "nn.AdaptiveMaxPool2d(1)".into(),
                format!("self.{id}({})", arg(0, true)),
            ),
            LayerKind::Addition { .. }
            | LayerKind::Multiplication { .. }
            | LayerKind::DepthConcat { .. }
            | LayerKind::Concat { .. } => {
                let four = plan.lift_all(i);
                let xs: Vec<String> = (0..l.inputs.len()).map(|k| arg(k, four)).collect();
                let decl = match &l.kind {
                    LayerKind::Addition { .. } => {
                        need(ADDITION, &mut helpers);
                        "Addition()".to_string()
                    }
                    LayerKind::Multiplication { .. } => {
                        need(MULTIPLICATION, &mut helpers);
                        "Multiplication()".to_string()
                    }
                    kind => {
                        need(CONCATENATION, &mut helpers);
                        format!("Concatenation({})", concat_axis(kind))
                    }
                };
                module(decl, format!("self.{id}({})", xs.join(", ")));
            }
            LayerKind::Dropout { probability } => module(
                format!("nn.Dropout(p={})", float_lit(*probability)),
                format!("self.{id}({})", arg(0, false)),
            ),
            LayerKind::Flatten => {
                need(FLATTEN, &mut helpers);
                module(
                    "MatlabFlatten()".into(),
                    format!("self.{id}({})", arg(0, true)),
                );
            }
            LayerKind::Softmax => module(
                "nn.Softmax(dim=1)".into(),
                format!("self.{id}({})", arg(0, false)),
            ),
            other => {
                return Err(super::layer_err(
                    l,
                    format!("{other:?} cannot be exported to PyTorch"),
                ));
            }
        }
        var[i] = id.clone();
    }
    let out_var = &var[plan.output_layer];
    let ret = if plan.out_flatten {
        format!("torch.flatten({out_var}, 1)")
    } else {
        out_var.clone()
    };

    let [h, w] = plan.input_hw();
    let c = plan.input_channels();
    let input_desc = if plan.input_rank == 3 {
        format!("[N, {c}, T] float32 (N sequences of T time steps)")
    } else if plan.input_rank == 4 {
        let d = |v: usize| {
            if v == 0 {
                "any".to_string()
            } else {
                v.to_string()
            }
        };
        format!(
            "[N, {c}, {}, {}] float32 (NCHW; H = image rows)",
            d(h),
            d(w)
        )
    } else {
        format!("[N, {c}] float32")
    };
    let od = plan.output_dims();
    let output_desc = if od.len() == 1 {
        format!("[N, {}]", od[0])
    } else if od.len() == 2 {
        format!("[N, {}, T]", od[0])
    } else {
        "[N, C, H, W]".to_string()
    };
    let norm_desc = match &plan.norm {
        Some(n) => format!(
            "MATLAB's input normalization ('{}') is part of the model: feed raw values.",
            n.kind
        ),
        None => "The input normalization is NOT part of the model: normalize inputs first.".into(),
    };
    let classes: Vec<String> = net.classes.iter().map(|c| py_str(c)).collect();
    let example_shape = if plan.input_rank == 3 {
        format!("1, {c}, 16")
    } else if plan.input_rank == 4 {
        format!(
            "1, {c}, {}, {}",
            if h == 0 { 64 } else { h },
            if w == 0 { 64 } else { w }
        )
    } else {
        format!("1, {c}")
    };

    let mut s = String::new();
    writeln!(
        s,
        r#""""PyTorch version of the MATLAB network '{var}' ({source}), generated by matcnn {ver}.

Input:  {input_desc}.
Output: {output_desc}.
{norm_desc}

    from model import build_model
    model = build_model()          # weights from weights.safetensors beside this file
    y = model(x)

The weights are also in model.pt (torch.load(path, weights_only=True) gives the state dict).
Layer attributes are the MATLAB layer names (made valid Python identifiers).
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = [{classes}]
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.safetensors")
"#,
        var = net.variable,
        source = crate::net::source_name(net.source),
        ver = env!("CARGO_PKG_VERSION"),
        classes = classes.join(", "),
    )
    .unwrap();
    if plan.norm.is_some() {
        s.push_str(HEADER_HELPERS);
    }
    for h in helpers {
        s.push_str(h);
    }
    let class_name = "MatlabNetwork";
    write!(
        s,
        r#"

class {class_name}(nn.Module):
    def __init__(self):
        super().__init__()
{init}
    def forward(self, x):
{fwd}        return {ret}


def build_model(weights=True):
    """The network in eval mode, with its weights from weights.safetensors when `weights`."""
    model = {class_name}()
    if weights:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(WEIGHTS))
    return model.eval()


if __name__ == "__main__":
    with torch.no_grad():
        print(build_model()(torch.zeros({example_shape})).shape)
"#
    )
    .unwrap();
    Ok(s)
}
