//! PyTorch export: a readable `model.py` (an `nn.Module` with one attribute per MATLAB layer and a
//! `forward` that follows the graph), its `state_dict` as `weights.safetensors`, and the same
//! state dict as `model.pt` (what `torch.save(model.state_dict())` writes).

mod activation;
mod combine;
mod conv;
mod detect;
mod io;
mod norm;
mod pool;
mod recurrent;
mod reshape;
pub(super) mod transformer;

use super::{ExportError, ExportOptions, Plan, pickle};
use crate::net::layer::{Layer, LayerKind, Network, Padding};
use std::collections::HashMap;
use std::fmt::Write;

pub fn export(net: &Network, opts: &ExportOptions) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    let plan = Plan::new(net, opts)?;
    let tensors = plan.state_dict()?;
    let source = model_py(&plan)?;
    let mut files = vec![
        ("model.py".into(), source.into_bytes()),
        ("weights.safetensors".into(), safetensors(&plan, &tensors)?),
        ("model.pt".into(), pickle::torch_file("model", &tensors)?),
    ];
    if let Some(py) = detect::detect_py(&plan) {
        files.push(("detect.py".into(), py.into_bytes()));
    }
    Ok(files)
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

/// What a layer adds to `model.py`.
enum Emit {
    /// An attribute `self.{id} = {decl}` in `__init__` and `{id} = {call}` in `forward`; the
    /// layer's value is `{id}`.
    Module { decl: String, call: String },
    /// A comment line `# {note}` in `__init__` and nothing in `forward`; the layer's value is the
    /// Python expression `value`.
    Note { note: String, value: String },
}

/// One layer while `model.py` is written: what the family code reads and the helpers it needs.
struct Cx<'c, 'a> {
    plan: &'c Plan<'a>,
    /// The layer's index.
    i: usize,
    l: &'c Layer,
    /// The layer's Python identifier.
    id: &'c str,
    /// Python expression of each earlier layer's output.
    var: &'c [String],
    /// Helper definitions written before the network class, in first-use order.
    helpers: &'c mut Vec<&'static str>,
}

impl Cx<'_, '_> {
    /// Input k as a Python expression, lifted to [N, C, 1, 1] when `four`.
    fn arg(&self, k: usize, four: bool) -> String {
        let v = self.var[self.l.inputs[k]].clone();
        if four && self.plan.in_rank(self.i, k) == 2 {
            format!("{v}[:, :, None, None]")
        } else {
            v
        }
    }

    /// `self.{id}({x})`.
    fn call(&self, x: &str) -> String {
        format!("self.{}({x})", self.id)
    }

    /// The module `decl` called on input 0 (lifted to four dimensions when `four`).
    fn module(&self, decl: impl Into<String>, four: bool) -> Emit {
        Emit::Module {
            decl: decl.into(),
            call: self.call(&self.arg(0, four)),
        }
    }

    /// Writes helper `h` before the network class (once).
    fn need(&mut self, h: &'static str) {
        if !self.helpers.contains(&h) {
            self.helpers.push(h);
        }
    }
}

fn model_py(plan: &Plan) -> Result<String, ExportError> {
    let net = plan.net;
    let ids = &plan.idents;
    let mut init = String::new();
    let mut fwd = String::new();
    let mut helpers: Vec<&str> = Vec::new();
    // Python expression of each layer's output.
    let mut var: Vec<String> = vec![String::new(); net.layers.len()];
    for (i, l) in net.layers.iter().enumerate() {
        let id = &ids[i];
        let cls = short_class(&l.class);
        let mut cx = Cx {
            plan,
            i,
            l,
            id,
            var: &var,
            helpers: &mut helpers,
        };
        let emit = match &l.kind {
            LayerKind::ImageInput { .. } => io::input(&cx),
            LayerKind::FeatureInput { .. } => io::input(&cx),
            LayerKind::SequenceInput { .. } => io::input(&cx),
            LayerKind::ClassificationOutput { .. } => io::output(&cx, cls),
            LayerKind::RegressionOutput => io::output(&cx, cls),
            LayerKind::Conv2d(c) => conv::conv2d(&cx, c),
            LayerKind::ConvTranspose2d(c) => conv::conv_transpose2d(&cx, c),
            LayerKind::FullyConnected(f) => conv::fully_connected(&cx, f)?,
            LayerKind::BatchNorm(b) => norm::batch_norm(&cx, b),
            LayerKind::GroupNorm(g) => norm::group_norm(&cx, g),
            LayerKind::Lrn(n) => norm::lrn(&mut cx, n),
            LayerKind::Activation(a) => activation::activation(&cx, *a),
            LayerKind::Softmax => activation::softmax(&cx),
            LayerKind::MaxPool2d(p) => pool::pool2d(&mut cx, p, true),
            LayerKind::AvgPool2d(p) => pool::pool2d(&mut cx, p, false),
            LayerKind::GlobalAvgPool => pool::global_avg(&cx),
            LayerKind::GlobalMaxPool => pool::global_max(&cx),
            LayerKind::Addition { .. } => combine::addition(&mut cx),
            LayerKind::Multiplication { .. } => combine::multiplication(&mut cx),
            LayerKind::DepthConcat { .. } => combine::concat(&mut cx),
            LayerKind::Concat { .. } => combine::concat(&mut cx),
            LayerKind::Flatten if plan.in_rank(i, 0) == 3 => reshape::flatten_sequence(&mut cx)?,
            LayerKind::Flatten => reshape::flatten(&mut cx),
            LayerKind::SequenceFolding => reshape::sequence_folding(&mut cx)?,
            LayerKind::SequenceUnfolding => reshape::sequence_unfolding(&mut cx)?,
            LayerKind::Dropout { probability } => reshape::dropout(&cx, *probability),
            LayerKind::Lstm(r) => recurrent::recurrent(&mut cx, r, true)?,
            LayerKind::Gru(r) => recurrent::recurrent(&mut cx, r, false)?,
            LayerKind::Conv1d(c) => conv::conv1d(&mut cx, c),
            LayerKind::ConvTranspose1d(c) => conv::conv_transpose1d(&cx, c),
            LayerKind::MaxPool1d(p) => pool::pool1d(&mut cx, p, true),
            LayerKind::AvgPool1d(p) => pool::pool1d(&mut cx, p, false),
            LayerKind::GlobalAvgPool1d => pool::global_pool1d(&cx, "AdaptiveAvgPool1d"),
            LayerKind::GlobalMaxPool1d => pool::global_pool1d(&cx, "AdaptiveMaxPool1d"),
            LayerKind::LayerNorm(n) => norm::layer_norm(&mut cx, n),
            LayerKind::LstmProjected(p) => recurrent::projected(&mut cx, p, true)?,
            LayerKind::GruProjected(p) => recurrent::projected(&mut cx, p, false)?,
            LayerKind::Transformer(t) => transformer::transformer(&mut cx, t)?,
            LayerKind::MaxUnpool2d(u) => pool::max_unpool2d(&mut cx, u),
            LayerKind::Yolov2Transform { anchors } => detect::yolov2_transform(&mut cx, *anchors),
            LayerKind::Yolov2Output { .. } => io::output(&cx, cls),
            other @ (LayerKind::Resize2d { .. } | LayerKind::Unsupported { .. }) => {
                return Err(super::layer_err(
                    l,
                    format!("{other:?} cannot be exported to PyTorch"),
                ));
            }
        };
        match emit {
            Emit::Module { decl, call } => {
                let named = if *id == l.name {
                    format!("# {cls}")
                } else {
                    format!("# '{}' ({cls})", l.name)
                };
                writeln!(init, "        self.{id} = {decl}  {named}").unwrap();
                writeln!(fwd, "        {id} = {call}").unwrap();
                var[i] = id.clone();
            }
            Emit::Note { note, value } => {
                writeln!(init, "        # {note}").unwrap();
                var[i] = value;
            }
        }
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
        s.push_str(io::INPUT_NORMALIZATION);
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
