//! Rust source export: a Burn 0.22 module (`model.rs`) with a field per layer that has weights or
//! settings, a `forward` that follows the graph, and a `load` that reads `weights.safetensors`
//! (PyTorch names and layouts, the same file as the PyTorch export) through burn-store's
//! `PyTorchToBurnAdapter`.

use super::{ExportError, ExportOptions, Plan, bn_epsilon, concat_axis, float_lit, pads, pytorch};
use crate::net::layer::{Activation, LayerKind, Network};
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
    let mut imports: std::collections::BTreeSet<&str> = Default::default();
    let mut helpers = String::new();
    let var: Vec<String> = ids.clone();
    for (i, l) in net.layers.iter().enumerate() {
        let id = &ids[i];
        let cls = pytorch::short_class(&l.class);
        let doc = format!("    /// '{}' ({cls})\n", l.name.replace('\n', " "));
        // Input k (consumes one use).
        let take = |k: usize, uses: &mut Vec<usize>, input_uses: &mut usize| -> String {
            let j = l.inputs[k];
            let (name, left) = match holder[j] {
                None => {
                    *input_uses -= 1;
                    ("x".to_string(), *input_uses)
                }
                Some(h) => {
                    uses[h] -= 1;
                    (var[h].clone(), uses[h])
                }
            };
            if left > 0 {
                format!("{name}.clone()")
            } else {
                name
            }
        };
        let arg = |k: usize, four: bool, uses: &mut Vec<usize>, input_uses: &mut usize| {
            let e = take(k, uses, input_uses);
            if four && plan.in_rank(i, k) == 2 {
                format!("lift({e})")
            } else {
                e
            }
        };
        let mut field = |ty: &str, init: String| {
            writeln!(fields, "{doc}    pub {id}: {ty},").unwrap();
            writeln!(inits, "            {id}: {init},").unwrap();
        };
        let stmt: String = match &l.kind {
            LayerKind::ImageInput { .. } | LayerKind::FeatureInput { .. } => {
                let Some(nc) = &plan.norm else {
                    writeln!(
                        fwd,
                        "        // '{}': input (normalization not included: apply it to x first)",
                        l.name
                    )
                    .unwrap();
                    continue;
                };
                let r = nc.shape.len();
                let shape = format!(
                    "[{}]",
                    nc.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                imports.insert("use burn::module::Param;");
                field(
                    &format!("InputNormalization<{r}>"),
                    format!(
                        "InputNormalization {{ shift: Param::from_tensor(Tensor::zeros({shape}, device)), scale: Param::from_tensor(Tensor::ones({shape}, device)) }}"
                    ),
                );
                input_uses -= 1;
                let x = if input_uses > 0 { "x.clone()" } else { "x" };
                format!("self.{id}.forward({x})")
            }
            LayerKind::Dropout { probability } => {
                imports.insert("use burn::nn::{Dropout, DropoutConfig};");
                field(
                    "Dropout",
                    format!("DropoutConfig::new({}).init()", f64_lit(*probability)),
                );
                format!(
                    "self.{id}.forward({})",
                    arg(0, false, &mut uses, &mut input_uses)
                )
            }
            LayerKind::ClassificationOutput { .. } | LayerKind::RegressionOutput => {
                writeln!(
                    fwd,
                    "        // '{}' ({cls}): training loss only, nothing to compute",
                    l.name
                )
                .unwrap();
                continue;
            }
            LayerKind::Conv2d(c) => {
                imports.insert("use burn::nn::conv::{Conv2d, Conv2dConfig};");
                imports.insert("use burn::nn::PaddingConfig2d;");
                let p = pads(&c.padding);
                field(
                    "Conv2d",
                    format!(
                        "Conv2dConfig::new([{}, {}], {}).with_stride({}).with_dilation({}).with_groups({}).with_padding(PaddingConfig2d::Explicit({}, {}, {}, {})).with_bias({}).init(device)",
                        c.in_channels,
                        c.filters,
                        arr2(c.filter),
                        arr2(c.stride),
                        arr2(c.dilation),
                        c.groups,
                        p.top,
                        p.left,
                        p.bottom,
                        p.right,
                        c.bias.is_some()
                    ),
                );
                format!(
                    "self.{id}.forward({})",
                    arg(0, true, &mut uses, &mut input_uses)
                )
            }
            LayerKind::ConvTranspose2d(c) => {
                imports.insert("use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};");
                field(
                    "ConvTranspose2d",
                    format!(
                        "ConvTranspose2dConfig::new([{}, {}], {}).with_stride({}).with_groups({}).with_bias({}).init(device)",
                        c.in_channels,
                        c.filters,
                        arr2(c.filter),
                        arr2(c.stride),
                        c.groups,
                        c.bias.is_some()
                    ),
                );
                let x = arg(0, true, &mut uses, &mut input_uses);
                let crop = pads(&c.cropping);
                if crop.top + crop.bottom + crop.left + crop.right == 0 {
                    format!("self.{id}.forward({x})")
                } else {
                    format!(
                        "{{\n            // MATLAB's cropping [top bottom left right] = [{} {} {} {}]\n            let y = self.{id}.forward({x});\n            let [n, c, h, w] = y.dims();\n            y.slice([0..n, 0..c, {}..h - {}, {}..w - {}])\n        }}",
                        crop.top,
                        crop.bottom,
                        crop.left,
                        crop.right,
                        crop.top,
                        crop.bottom,
                        crop.left,
                        crop.right
                    )
                }
            }
            LayerKind::FullyConnected(f) => {
                imports.insert("use burn::nn::{Linear, LinearConfig};");
                let w = super::param(l, &f.weights, "Weights")?;
                let n_in = w.shape.get(1).copied().unwrap_or(0);
                field(
                    "Linear",
                    format!(
                        "LinearConfig::new({n_in}, {}).with_bias({}).init(device)",
                        f.outputs,
                        f.bias.is_some()
                    ),
                );
                let x = arg(0, false, &mut uses, &mut input_uses);
                if plan.in_rank(i, 0) == 4 {
                    // The weight columns follow an NCHW flatten.
                    format!("self.{id}.forward({x}.flatten::<2>(1, 3))")
                } else {
                    format!("self.{id}.forward({x})")
                }
            }
            LayerKind::BatchNorm(b) => {
                imports.insert("use burn::nn::{BatchNorm, BatchNormConfig};");
                field(
                    "BatchNorm",
                    format!(
                        "BatchNormConfig::new({}).with_epsilon({}).init(device)",
                        b.channels,
                        f64_lit(bn_epsilon(b))
                    ),
                );
                format!(
                    "self.{id}.forward({})",
                    arg(0, false, &mut uses, &mut input_uses)
                )
            }
            LayerKind::GroupNorm(g) => {
                imports.insert("use burn::nn::{GroupNorm, GroupNormConfig};");
                field(
                    "GroupNorm",
                    format!(
                        "GroupNormConfig::new({}, {}).with_epsilon({}).init(device)",
                        g.groups,
                        g.channels,
                        f64_lit(g.epsilon)
                    ),
                );
                format!(
                    "self.{id}.forward({})",
                    arg(0, true, &mut uses, &mut input_uses)
                )
            }
            LayerKind::Lrn(lrn) => {
                imports.insert("use burn::nn::norm::{LocalResponseNorm, LocalResponseNormConfig};");
                // Burn computes x / (k + alpha * mean_window(x^2))^beta with MATLAB's window placement.
                field(
                    "LocalResponseNorm",
                    format!(
                        "LocalResponseNormConfig::new({}).with_alpha({}).with_beta({}).with_k({}).init()",
                        lrn.window,
                        f64_lit(lrn.alpha),
                        f64_lit(lrn.beta),
                        f64_lit(lrn.k)
                    ),
                );
                format!(
                    "self.{id}.forward({})",
                    arg(0, true, &mut uses, &mut input_uses)
                )
            }
            LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
                imports.insert("use burn::nn::PaddingConfig2d;");
                let pd = pads(&p.padding);
                let padding = format!(
                    "PaddingConfig2d::Explicit({}, {}, {}, {})",
                    pd.top, pd.left, pd.bottom, pd.right
                );
                if matches!(l.kind, LayerKind::MaxPool2d(_)) {
                    imports.insert("use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};");
                    field(
                        "MaxPool2d",
                        format!(
                            "MaxPool2dConfig::new({}).with_strides({}).with_padding({padding}).init()",
                            arr2(p.size),
                            arr2(p.stride)
                        ),
                    );
                } else {
                    imports.insert("use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};");
                    field(
                        "AvgPool2d",
                        format!(
                            "AvgPool2dConfig::new({}).with_strides({}).with_padding({padding}).with_count_include_pad({}).init()",
                            arr2(p.size),
                            arr2(p.stride),
                            p.count_include_pad
                        ),
                    );
                }
                format!(
                    "self.{id}.forward({})",
                    arg(0, true, &mut uses, &mut input_uses)
                )
            }
            LayerKind::GlobalAvgPool => format!(
                "{}.mean_dim(3).mean_dim(2)",
                arg(0, true, &mut uses, &mut input_uses)
            ),
            LayerKind::GlobalMaxPool => format!(
                "{}.max_dim(3).max_dim(2)",
                arg(0, true, &mut uses, &mut input_uses)
            ),
            LayerKind::Activation(a) => {
                imports.insert("use burn::tensor::activation;");
                let x = arg(0, false, &mut uses, &mut input_uses);
                match *a {
                    Activation::Relu => format!("activation::relu({x})"),
                    Activation::LeakyRelu { scale } => {
                        format!("activation::leaky_relu({x}, {})", f64_lit(scale))
                    }
                    Activation::ClippedRelu { ceiling } => {
                        format!("{x}.clamp(0.0, {})", f64_lit(ceiling))
                    }
                    Activation::Elu { alpha } => {
                        format!("activation::elu({x}, {})", f64_lit(alpha))
                    }
                    Activation::Tanh => format!("activation::tanh({x})"),
                    Activation::Sigmoid => format!("activation::sigmoid({x})"),
                    Activation::Swish => format!("activation::silu({x})"),
                    Activation::Gelu { tanh: false } => format!("activation::gelu({x})"),
                    Activation::Gelu { tanh: true } => {
                        format!("activation::gelu_approximate({x})")
                    }
                }
            }
            LayerKind::Softmax => {
                imports.insert("use burn::tensor::activation;");
                format!(
                    "activation::softmax({}, 1)",
                    arg(0, false, &mut uses, &mut input_uses)
                )
            }
            LayerKind::Addition { .. } | LayerKind::Multiplication { .. } => {
                let four = plan.lift_all(i);
                let xs: Vec<String> = (0..l.inputs.len())
                    .map(|k| arg(k, four, &mut uses, &mut input_uses))
                    .collect();
                let op = if matches!(l.kind, LayerKind::Addition { .. }) {
                    " + "
                } else {
                    " * "
                };
                xs.join(op)
            }
            LayerKind::DepthConcat { .. } | LayerKind::Concat { .. } => {
                let four = plan.lift_all(i);
                let xs: Vec<String> = (0..l.inputs.len())
                    .map(|k| arg(k, four, &mut uses, &mut input_uses))
                    .collect();
                format!(
                    "Tensor::cat(vec![{}], {})",
                    xs.join(", "),
                    concat_axis(&l.kind)
                )
            }
            LayerKind::Flatten => {
                if !helpers.contains("fn matlab_flatten") {
                    helpers.push_str(
                        "\n/// flattenLayer: MATLAB flattens H x W x C column-major (h fastest), i.e. NCWH row-major.\nfn matlab_flatten(x: Tensor<4>) -> Tensor<2> {\n    let [n, c, h, w] = x.dims();\n    x.swap_dims(2, 3).reshape([n, c * h * w])\n}\n",
                    );
                }
                format!(
                    "matlab_flatten({})",
                    arg(0, true, &mut uses, &mut input_uses)
                )
            }
            other => {
                return Err(super::layer_err(
                    l,
                    format!("{other:?} cannot be exported to Rust"),
                ));
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
