//! Rust source export: a Burn 0.22 module (`model.rs`) with a field per layer that has weights or
//! settings, a `forward` that follows the graph, and a `load` that reads `weights.safetensors`
//! (PyTorch names and layouts, the same file as the PyTorch export) through burn-store's
//! `PyTorchToBurnAdapter`.

mod activation;
mod combine;
mod conv;
mod detect;
mod io;
mod norm;
mod pool;
mod recurrent;
mod reshape;
mod transformer;

use super::{ExportError, ExportOptions, Plan, float_lit, pytorch};
use crate::net::layer::{Layer, LayerKind, Network};
use std::collections::BTreeSet;
use std::fmt::Write;

pub fn export(net: &Network, opts: &ExportOptions) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    if net.is_sequence() {
        return Err(ExportError::Unsupported(
            "sequence networks are not supported by the Rust source export (use ONNX or PyTorch)"
                .into(),
        ));
    }
    let plan = Plan::new(net, opts)?;
    let tensors = plan.state_dict()?;
    Ok(vec![
        ("model.rs".into(), model_rs(&plan)?.into_bytes()),
        (
            "weights.safetensors".into(),
            pytorch::safetensors(&plan, &tensors)?,
        ),
    ])
}

fn arr2(v: [usize; 2]) -> String {
    format!("[{}, {}]", v[0], v[1])
}

fn f64_lit(v: f64) -> String {
    let s = float_lit(v);
    if s == "inf" {
        "f64::INFINITY".into()
    } else if s == "-inf" {
        "f64::NEG_INFINITY".into()
    } else {
        s
    }
}

fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

/// What a layer adds to `forward`.
enum Stmt {
    /// `let {id} = {expr};`
    Let(String),
    /// A comment line `// {note}`: the layer computes nothing.
    Note(String),
}

/// One layer while `model.rs` is written: what the family code reads, and the parts of the
/// file it adds to.
struct Cx<'c, 'a> {
    plan: &'c Plan<'a>,
    /// The layer's index.
    i: usize,
    l: &'c Layer,
    /// The layer's Rust identifier (its field and its variable in `forward`).
    id: &'c str,
    /// Which layer's variable holds each layer's value (None: the input `x`).
    holder: &'c [Option<usize>],
    /// Reads left of each layer's variable, to move it on its last use.
    uses: &'c mut [usize],
    /// Reads left of `x`.
    input_uses: &'c mut usize,
    /// The `Model` struct's fields.
    fields: &'c mut String,
    /// Their initialization in `Model::new`.
    inits: &'c mut String,
    imports: &'c mut BTreeSet<&'static str>,
    /// Helper functions written before `Model`.
    helpers: &'c mut String,
}

impl Cx<'_, '_> {
    /// Input k (consumes one use).
    fn take(&mut self, k: usize) -> String {
        let j = self.l.inputs[k];
        let (name, left) = match self.holder[j] {
            None => return self.take_x().to_string(),
            Some(h) => {
                self.uses[h] -= 1;
                (self.plan.idents[h].clone(), self.uses[h])
            }
        };
        if left > 0 {
            format!("{name}.clone()")
        } else {
            name
        }
    }

    /// The input `x` (consumes one use).
    fn take_x(&mut self) -> &'static str {
        *self.input_uses -= 1;
        if *self.input_uses > 0 {
            "x.clone()"
        } else {
            "x"
        }
    }

    /// Input k (consumes one use), lifted to four dimensions when `four`.
    fn arg(&mut self, k: usize, four: bool) -> String {
        let e = self.take(k);
        if four && self.plan.in_rank(self.i, k) == 2 {
            format!("lift({e})")
        } else {
            e
        }
    }

    /// `self.{id}.forward(input 0)`, the input lifted to four dimensions when `four`.
    fn forward(&mut self, four: bool) -> Stmt {
        let x = self.arg(0, four);
        Stmt::Let(format!("self.{}.forward({x})", self.id))
    }

    /// A field of type `ty` built by `init`.
    fn field(&mut self, ty: &str, init: String) {
        let (l, id) = (self.l, self.id);
        let cls = pytorch::short_class(&l.class);
        let doc = format!("    /// '{}' ({cls})\n", l.name.replace('\n', " "));
        writeln!(self.fields, "{doc}    pub {id}: {ty},").unwrap();
        writeln!(self.inits, "            {id}: {init},").unwrap();
    }

    fn import(&mut self, line: &'static str) {
        self.imports.insert(line);
    }
}

fn model_rs(plan: &Plan) -> Result<String, ExportError> {
    let net = plan.net;
    let ids = &plan.idents;
    let n = net.layers.len();
    // Which layer's variable holds each layer's value (None: the input `x`): output layers and
    // an input layer without normalization compute nothing.
    let mut holder: Vec<Option<usize>> = vec![None; n];
    let statement = |i: usize| {
        let l = &net.layers[i];
        match l.kind {
            LayerKind::ClassificationOutput { .. } | LayerKind::RegressionOutput => false,
            LayerKind::ImageInput { .. } | LayerKind::FeatureInput { .. } => plan.norm.is_some(),
            _ => true,
        }
    };
    for (i, l) in net.layers.iter().enumerate() {
        holder[i] = if statement(i) {
            Some(i)
        } else if l.inputs.is_empty() {
            None
        } else {
            holder[l.inputs[0]]
        };
    }
    // How many times each value is read, to move it on its last use.
    let mut uses = vec![0usize; n];
    let mut input_uses = 0usize;
    let mut count = |h: Option<usize>| match h {
        None => input_uses += 1,
        Some(k) => uses[k] += 1,
    };
    for (i, l) in net.layers.iter().enumerate() {
        if !statement(i) {
            continue;
        }
        if l.inputs.is_empty() {
            count(None); // the normalization reads x
        }
        for &j in &l.inputs {
            count(holder[j]);
        }
    }
    count(holder[plan.output_layer]);

    let mut fields = String::new();
    let mut inits = String::new();
    let mut fwd = String::new();
    let mut imports: BTreeSet<&str> = Default::default();
    let mut helpers = String::new();
    let var = ids;
    for (i, l) in net.layers.iter().enumerate() {
        let id = &ids[i];
        let cls = pytorch::short_class(&l.class);
        let mut cx = Cx {
            plan,
            i,
            l,
            id,
            holder: &holder,
            uses: &mut uses,
            input_uses: &mut input_uses,
            fields: &mut fields,
            inits: &mut inits,
            imports: &mut imports,
            helpers: &mut helpers,
        };
        let stmt = match &l.kind {
            LayerKind::ImageInput { .. } => io::input(&mut cx),
            LayerKind::FeatureInput { .. } => io::input(&mut cx),
            LayerKind::ClassificationOutput { .. } => io::output(&cx, cls),
            LayerKind::RegressionOutput => io::output(&cx, cls),
            LayerKind::Conv2d(c) => conv::conv2d(&mut cx, c),
            LayerKind::ConvTranspose2d(c) => conv::conv_transpose2d(&mut cx, c),
            LayerKind::FullyConnected(f) => conv::fully_connected(&mut cx, f)?,
            LayerKind::BatchNorm(b) => norm::batch_norm(&mut cx, b),
            LayerKind::GroupNorm(g) => norm::group_norm(&mut cx, g),
            LayerKind::Lrn(n) => norm::lrn(&mut cx, n),
            LayerKind::Activation(a) => activation::activation(&mut cx, *a),
            LayerKind::Softmax => activation::softmax(&mut cx),
            LayerKind::MaxPool2d(p) => pool::pool2d(&mut cx, p, true),
            LayerKind::AvgPool2d(p) => pool::pool2d(&mut cx, p, false),
            LayerKind::GlobalAvgPool => pool::global_avg(&mut cx),
            LayerKind::GlobalMaxPool => pool::global_max(&mut cx),
            LayerKind::Addition { .. } => combine::elementwise(&mut cx, " + "),
            LayerKind::Multiplication { .. } => combine::elementwise(&mut cx, " * "),
            LayerKind::DepthConcat { .. } => combine::concat(&mut cx),
            LayerKind::Concat { .. } => combine::concat(&mut cx),
            LayerKind::Flatten => reshape::flatten(&mut cx),
            LayerKind::Dropout { probability } => reshape::dropout(&mut cx, *probability),
            LayerKind::LayerNorm(n) => norm::layer_norm(&mut cx, n)?,
            LayerKind::LstmProjected(_) => return Err(recurrent::refuse_projected(l)),
            LayerKind::GruProjected(_) => return Err(recurrent::refuse_projected(l)),
            LayerKind::Transformer(t) => return Err(transformer::refuse(l, t)),
            LayerKind::Yolov2Output { .. } => Stmt::Let(cx.arg(0, false)),
            LayerKind::MaxUnpool2d(u) => pool::max_unpool2d(&mut cx, u),
            LayerKind::Yolov2Transform { anchors } => detect::yolov2_transform(&mut cx, *anchors),
            other @ (LayerKind::SequenceInput { .. }
            | LayerKind::Resize2d { .. }
            | LayerKind::Lstm(_)
            | LayerKind::Gru(_)
            | LayerKind::SequenceFolding
            | LayerKind::SequenceUnfolding
            | LayerKind::Conv1d(_)
            | LayerKind::ConvTranspose1d(_)
            | LayerKind::MaxPool1d(_)
            | LayerKind::AvgPool1d(_)
            | LayerKind::GlobalAvgPool1d
            | LayerKind::GlobalMaxPool1d
            | LayerKind::Unsupported { .. }) => {
                return Err(super::layer_err(
                    l,
                    format!("{other:?} cannot be exported to Rust"),
                ));
            }
        };
        let stmt = match stmt {
            Stmt::Let(stmt) => stmt,
            Stmt::Note(note) => {
                writeln!(fwd, "        // {note}").unwrap();
                continue;
            }
        };
        let comment = if *id == l.name {
            String::new()
        } else {
            format!("        // '{}' ({cls})\n", l.name)
        };
        writeln!(fwd, "{comment}        let {id} = {stmt};").unwrap();
    }
    if fwd.contains("lift(") {
        helpers.push_str(
            "\n/// `[N, C]` → `[N, C, 1, 1]`, for a layer that needs four dimensions after a fully connected one.\nfn lift(x: Tensor<2>) -> Tensor<4> {\n    let [n, c] = x.dims();\n    x.reshape([n, c, 1, 1])\n}\n",
        );
    }
    let out = match holder[plan.output_layer] {
        None => "x".to_string(),
        Some(k) => var[k].clone(),
    };
    let (ret, out_rank) = if plan.out_flatten {
        (format!("{out}.flatten::<2>(1, 3)"), 2)
    } else {
        (out, plan.rank[plan.output_layer])
    };
    let in_rank = plan.input_rank;

    let [h, w] = plan.input_hw();
    let c = plan.input_channels();
    let input_desc = if in_rank == 4 {
        let d = |v: usize| {
            if v == 0 {
                "any".to_string()
            } else {
                v.to_string()
            }
        };
        format!("[N, {c}, {}, {}] (NCHW; H = image rows)", d(h), d(w))
    } else {
        format!("[N, {c}]")
    };
    let norm_desc = match &plan.norm {
        Some(nc) => format!(
            "MATLAB's input normalization ('{}') is part of the model: feed raw values.",
            nc.kind
        ),
        None => "The input normalization is NOT part of the model: normalize inputs first.".into(),
    };
    let classes: Vec<String> = net.classes.iter().map(|c| rust_str(c)).collect();
    let od = plan.output_dims();
    let output_desc = if od.len() == 1 {
        format!("[N, {}]", od[0])
    } else {
        "[N, C, H, W]".to_string()
    };

    let mut s = String::new();
    write!(
        s,
        r#"//! Burn 0.22 module for the MATLAB network '{var}' ({source}), generated by matcnn {ver}.
//!
//! Input: {input_desc}. {norm_desc}
//! Output: `Tensor<{out_rank}>` {output_desc}.
//!
//! Weights: `weights.safetensors`, written beside this file, in PyTorch's names and layouts (the
//! same file as matcnn's PyTorch export); `Model::load` reads it with burn-store's
//! `PyTorchToBurnAdapter`. It needs Burn's `safetensors` feature, e.g.
//!
//! ```toml
//! burn = {{ version = "0.22.1", features = ["flex", "safetensors"] }}
//! ```
//!
//! ```ignore
//! let device = burn::prelude::Device::flex();
//! let model = model::Model::load("weights.safetensors", &device)?;
//! let y = model.forward(x);
//! ```
//!
//! Fields are the MATLAB layers with weights or settings (named after them); parameter-free
//! layers (activations, softmax, additions, concatenations) are single lines of `forward`.

#![allow(non_snake_case, dead_code)]

use burn::module::Module;
use burn::prelude::*;
use burn::store::{{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, SafetensorsStoreError}};
"#,
        var = net.variable,
        source = crate::net::source_name(net.source),
        ver = env!("CARGO_PKG_VERSION"),
    )
    .unwrap();
    for i in &imports {
        writeln!(s, "{i}").unwrap();
    }
    write!(
        s,
        r#"
/// Class names, in output order.
pub const CLASSES: &[&str] = &[{classes}];
"#,
        classes = classes.join(", ")
    )
    .unwrap();
    if plan.norm.is_some() {
        s.push_str(
            r#"
/// MATLAB's input normalization as `(x - shift) * scale`.
#[derive(Module, Debug)]
pub struct InputNormalization<const D: usize> {
    pub shift: Param<Tensor<D>>,
    pub scale: Param<Tensor<D>>,
}

impl<const D: usize> InputNormalization<D> {
    pub fn forward(&self, x: Tensor<D>) -> Tensor<D> {
        (x - self.shift.val()) * self.scale.val()
    }
}
"#,
        );
    }
    s.push_str(&helpers);
    write!(
        s,
        r#"
#[derive(Module, Debug)]
pub struct Model {{
{fields}}}

impl Model {{
    /// The network with freshly initialized weights (see [`Model::load`]).
    pub fn new(device: &Device) -> Self {{
        Self {{
{inits}        }}
    }}

    /// The network with its weights from `weights.safetensors`.
    pub fn load(
        path: impl Into<std::path::PathBuf>,
        device: &Device,
    ) -> Result<Self, SafetensorsStoreError> {{
        let mut model = Self::new(device);
        let mut store = SafetensorsStore::from_file(path).with_from_adapter(PyTorchToBurnAdapter);
        model.load_from(&mut store)?;
        Ok(model)
    }}

    pub fn forward(&self, x: Tensor<{in_rank}>) -> Tensor<{out_rank}> {{
{fwd}        {ret}
    }}
}}
"#
    )
    .unwrap();
    Ok(s)
}
