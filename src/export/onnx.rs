//! ONNX export: one or a few standard ONNX nodes per MATLAB layer, named after the layer, with
//! the weights as initializers named `<layer>.<parameter>`.
//!
//! The protobuf types are the ones `onnx-ir` (Burn's ONNX crate) generates from the official
//! `onnx.proto` and re-exports; nested types it keeps private (`OperatorSetIdProto`,
//! `StringStringEntryProto`, tensor type and dimension) are reached through the generated
//! accessors and `Default::default()`.

// Protobuf messages are built field by field.
#![allow(clippy::field_reassign_with_default)]

use super::{
    ExportError, ExportOptions, Plan, RecurrentWeights, Val, bn_epsilon, concat_axis, layer_err,
    pads, param, values,
};
use crate::net::layer::{Activation, LayerKind, Network};
use onnx_ir::{
    AttributeProto, AttributeType, GraphProto, Message, ModelProto, NodeProto, TensorProto,
    TypeProto, ValueInfoProto,
};

/// Opsets the exporter writes: Softmax over one axis and Unsqueeze with an `axes` input need 13.
pub const MIN_OPSET: i64 = 13;
pub const MAX_OPSET: i64 = 22;

/// The IR version that goes with an opset (onnx/docs/Versioning.md).
pub fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

// TensorProto.DataType
const FLOAT: i32 = 1;
const INT64: i32 = 7;

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    let mut a = AttributeProto::default();
    a.name = name.into();
    a.type_ = ty.into();
    a
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    let mut a = attr(name, AttributeType::INT);
    a.i = v;
    a
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = attr(name, AttributeType::INTS);
    a.ints = v.to_vec();
    a
}

fn a_float(name: &str, v: f64) -> AttributeProto {
    let mut a = attr(name, AttributeType::FLOAT);
    a.f = v as f32;
    a
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    let mut a = attr(name, AttributeType::STRING);
    a.s = v.as_bytes().to_vec().into();
    a
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let mut v = ValueInfoProto::default();
    v.name = name.into();
    let mut ty = TypeProto::default();
    let t = ty.mut_tensor_type();
    t.elem_type = FLOAT;
    let shape = t.shape.mut_or_insert_default();
    for d in dims {
        shape.dim.push(Default::default());
        let last = shape.dim.last_mut().expect("pushed");
        match d {
            Dim::Fixed(n) => last.set_dim_value(*n as i64),
            Dim::Named(s) => last.set_dim_param((*s).into()),
        }
    }
    v.type_ = Some(ty).into();
    v
}

enum Dim {
    Fixed(usize),
    Named(&'static str),
}

fn dim(n: usize, name: &'static str) -> Dim {
    if n == 0 {
        Dim::Named(name)
    } else {
        Dim::Fixed(n)
    }
}

/// The graph under construction.
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// Names of shared constants already added.
    consts: std::collections::HashSet<String>,
}

impl Graph {
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) {
        let mut n = NodeProto::default();
        n.op_type = op.into();
        n.name = name.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.to_string()];
        n.attribute = attrs;
        self.nodes.push(n);
    }

    fn f32_init(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let mut t = TensorProto::default();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = FLOAT;
        t.raw_data = data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into();
        self.inits.push(t);
        name.into()
    }

    fn i64_init(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let mut t = TensorProto::default();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = INT64;
        t.raw_data = data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into();
        self.inits.push(t);
        name.into()
    }

    /// A scalar f32 constant shared by every node that uses the same value.
    fn scalar(&mut self, v: f32) -> String {
        let name = format!("const_{v:e}");
        if self.consts.insert(name.clone()) {
            self.f32_init(&name, &[], &[v]);
        }
        name
    }

    fn axes_2_3(&mut self) -> String {
        let name = "axes_2_3".to_string();
        if self.consts.insert(name.clone()) {
            self.i64_init(&name, &[2], &[2, 3]);
        }
        name
    }
}

/// Names of the values in the graph: the graph input is `input`, a layer's output is named after
/// the layer (renamed if that collides), and the network's output is `output`.
struct Names {
    layer: Vec<String>,
}

impl Names {
    fn new(plan: &Plan) -> Names {
        let mut used: std::collections::HashSet<String> =
            ["input", "output"].iter().map(|s| s.to_string()).collect();
        let mut layer = Vec::new();
        for l in &plan.net.layers {
            let base = if l.name.is_empty() {
                "layer".to_string()
            } else {
                l.name.clone()
            };
            let mut cand = base.clone();
            let mut k = 1;
            while !used.insert(cand.clone()) {
                cand = format!("{base}_{k}");
                k += 1;
            }
            layer.push(cand);
        }
        if let (Val::Layer(j), false) = (plan.out, plan.out_flatten) {
            layer[j] = "output".into();
        }
        Names { layer }
    }

    fn of(&self, v: Val) -> &str {
        match v {
            Val::Input => "input",
            Val::Layer(j) => &self.layer[j],
        }
    }
}

pub fn export(net: &Network, opts: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    if !(MIN_OPSET..=MAX_OPSET).contains(&opts.opset) {
        return Err(ExportError::Unsupported(format!(
            "ONNX opset {} is not supported (use {MIN_OPSET} to {MAX_OPSET})",
            opts.opset
        )));
    }
    let plan = Plan::new(net, opts)?;
    let names = Names::new(&plan);
    let mut g = Graph {
        nodes: Vec::new(),
        inits: Vec::new(),
        consts: Default::default(),
    };
    for i in 0..net.layers.len() {
        if plan.computes[i] {
            layer(&mut g, &plan, &names, i)?;
        }
    }
    // The output.
    let out_name = names.of(plan.out).to_string();
    if plan.out_flatten {
        g.node(
            "Flatten",
            "output_flatten",
            &[&out_name],
            "output",
            vec![a_int("axis", 1)],
        );
    } else if out_name != "output" {
        g.node(
            "Identity",
            "output_identity",
            &[&out_name],
            "output",
            vec![],
        );
    }

    let [h, w] = plan.input_hw();
    let in_dims = if plan.input_rank == 3 {
        vec![
            Dim::Named("batch"),
            Dim::Fixed(plan.input_channels()),
            Dim::Named("time"),
        ]
    } else if plan.input_rank == 4 {
        vec![
            Dim::Named("batch"),
            Dim::Fixed(plan.input_channels()),
            dim(h, "height"),
            dim(w, "width"),
        ]
    } else {
        vec![Dim::Named("batch"), Dim::Fixed(plan.input_channels())]
    };
    let od = plan.output_dims();
    let mut out_dims = vec![Dim::Named("batch"), dim(od[0], "channels")];
    if od.len() == 2 {
        out_dims.push(Dim::Named("time"));
    }
    if od.len() == 3 {
        out_dims.push(dim(od[1], "height"));
        out_dims.push(dim(od[2], "width"));
    }

    let mut graph = GraphProto::default();
    graph.name = if net.variable.is_empty() {
        "matcnn".into()
    } else {
        net.variable.clone()
    };
    graph.input = vec![value_info("input", &in_dims)];
    graph.output = vec![value_info("output", &out_dims)];
    graph.node = g.nodes;
    graph.initializer = g.inits;

    let mut model = ModelProto::default();
    model.ir_version = ir_version(opts.opset);
    model.producer_name = "matcnn".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.doc_string = format!(
        "MATLAB network '{}' ({}), exported by matcnn. Input 'input': float32 {}; {}. Output 'output': {}.",
        net.variable,
        crate::net::source_name(net.source),
        match plan.input_rank {
            4 => "[N, C, H, W] (H = image rows)",
            3 => "[N, C, T] (sequences)",
            _ => "[N, C]",
        },
        match &plan.norm {
            Some(n) => format!("input normalization '{}' included", n.kind),
            None => "no input normalization in the graph".into(),
        },
        match od.len() {
            1 => "[N, K]",
            2 => "[N, K, T]",
            _ => "[N, C, H, W]",
        }
    );
    model.opset_import.push(Default::default());
    let op = model.opset_import.last_mut().expect("pushed");
    op.domain = String::new();
    op.version = opts.opset;
    let mut meta = |k: &str, v: String| {
        model.metadata_props.push(Default::default());
        let e = model.metadata_props.last_mut().expect("pushed");
        e.key = k.into();
        e.value = v;
    };
    if !net.classes.is_empty() {
        meta(
            "classes",
            serde_json::to_string(&net.classes).expect("strings serialize"),
        );
    }
    meta("matlab_variable", net.variable.clone());
    meta(
        "matlab_source",
        crate::net::source_name(net.source).to_string(),
    );
    if let Some(n) = &plan.norm {
        meta("normalization", n.kind.into());
    }
    model.graph = Some(graph).into();
    model
        .write_to_bytes()
        .map_err(|e| ExportError::Unsupported(format!("protobuf encoding failed: {e}")))
}

/// ONNX pads `[top, left, bottom, right]` from MATLAB's `[top bottom left right]`.
fn onnx_pads(p: crate::net::layer::Padding) -> Vec<i64> {
    vec![p.top as i64, p.left as i64, p.bottom as i64, p.right as i64]
}

fn ints(v: [usize; 2]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// Emits the nodes of layer `i`.
fn layer(g: &mut Graph, plan: &Plan, names: &Names, i: usize) -> Result<(), ExportError> {
    let l = &plan.net.layers[i];
    let name = l.name.as_str();
    let out = names.layer[i].clone();
    let input_val = |k: usize| plan.value[l.inputs[k]];
    // Input k, as `[N, C, H, W]` when `four`.
    let arg = |g: &mut Graph, k: usize, four: bool| -> String {
        let v = names.of(input_val(k)).to_string();
        if four && plan.in_rank(i, k) == 2 {
            let axes = g.axes_2_3();
            let lifted = format!("{name}/unsqueeze{k}");
            g.node(
                "Unsqueeze",
                &format!("{name}/unsqueeze{k}"),
                &[&v, &axes],
                &lifted,
                vec![],
            );
            lifted
        } else {
            v
        }
    };
    match &l.kind {
        LayerKind::ImageInput { .. }
        | LayerKind::FeatureInput { .. }
        | LayerKind::SequenceInput { .. } => {
            let n = plan
                .norm
                .as_ref()
                .expect("computes only with normalization");
            let shift = g.f32_init(&format!("{name}.shift"), &n.shape, &n.shift);
            if n.zero_center {
                g.node("Sub", name, &["input", &shift], &out, vec![]);
            } else {
                let scale = g.f32_init(&format!("{name}.scale"), &n.shape, &n.scale);
                let centered = format!("{name}/centered");
                g.node(
                    "Sub",
                    &format!("{name}/sub"),
                    &["input", &shift],
                    &centered,
                    vec![],
                );
                g.node("Mul", name, &[&centered, &scale], &out, vec![]);
            }
        }
        LayerKind::Conv2d(c) => {
            let x = arg(g, 0, true);
            let wt = param(l, &c.weights, "Weights")?;
            let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
            let mut ins = vec![x, w];
            if c.bias.is_some() {
                let b = param(l, &c.bias, "Bias")?;
                ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
            }
            let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
            g.node(
                "Conv",
                name,
                &ins,
                &out,
                vec![
                    a_ints("kernel_shape", &ints(c.filter)),
                    a_ints("strides", &ints(c.stride)),
                    a_ints("dilations", &ints(c.dilation)),
                    a_ints("pads", &onnx_pads(pads(&c.padding))),
                    a_int("group", c.groups as i64),
                ],
            );
        }
        LayerKind::ConvTranspose2d(c) => {
            let x = arg(g, 0, true);
            let wt = param(l, &c.weights, "Weights")?;
            let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
            let mut ins = vec![x, w];
            if c.bias.is_some() {
                let b = param(l, &c.bias, "Bias")?;
                ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
            }
            let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
            let crop = pads(&c.cropping);
            let attrs = vec![
                a_ints("kernel_shape", &ints(c.filter)),
                a_ints("strides", &ints(c.stride)),
                a_int("group", c.groups as i64),
            ];
            if crop.top + crop.bottom + crop.left + crop.right == 0 {
                g.node("ConvTranspose", name, &ins, &out, attrs);
            } else {
                // MATLAB's cropping as a Slice of the full transposed convolution.
                let full = format!("{name}/uncropped");
                g.node(
                    "ConvTranspose",
                    &format!("{name}/convtranspose"),
                    &ins,
                    &full,
                    attrs,
                );
                let end = |p: usize| if p == 0 { i64::MAX } else { -(p as i64) };
                let starts = g.i64_init(
                    &format!("{name}.crop_starts"),
                    &[2],
                    &[crop.top as i64, crop.left as i64],
                );
                let ends = g.i64_init(
                    &format!("{name}.crop_ends"),
                    &[2],
                    &[end(crop.bottom), end(crop.right)],
                );
                let axes = g.axes_2_3();
                g.node("Slice", name, &[&full, &starts, &ends, &axes], &out, vec![]);
            }
        }
        LayerKind::FullyConnected(f) if plan.in_rank(i, 0) == 3 => {
            // Per time step: [N, C, T] → [N, T, C] · W^T + b → [N, K, T].
            let x = arg(g, 0, false);
            let wt = param(l, &f.weights, "Weights")?;
            let (k, c) = (wt.shape[0], wt.shape.get(1).copied().unwrap_or(0));
            let mut wtt = vec![0.0f32; k * c];
            for r in 0..k {
                for j in 0..c {
                    wtt[j * k + r] = wt.data[r * c + j];
                }
            }
            let w = g.f32_init(&format!("{name}.weight_t"), &[c, k], &wtt);
            let t = |s: &str| format!("{name}/{s}");
            g.node(
                "Transpose",
                &t("to_ntc"),
                &[&x],
                &t("ntc"),
                vec![a_ints("perm", &[0, 2, 1])],
            );
            g.node("MatMul", &t("matmul"), &[&t("ntc"), &w], &t("ntk"), vec![]);
            let mut y = t("ntk");
            if f.bias.is_some() {
                let b = param(l, &f.bias, "Bias")?;
                let b = g.f32_init(&format!("{name}.bias"), &b.shape, &b.data);
                g.node("Add", &t("add"), &[&y, &b], &t("biased"), vec![]);
                y = t("biased");
            }
            g.node(
                "Transpose",
                name,
                &[&y],
                &out,
                vec![a_ints("perm", &[0, 2, 1])],
            );
        }
        LayerKind::Lstm(r) | LayerKind::Gru(r) => {
            let x = arg(g, 0, false);
            recurrent(g, l, &x, &out, r)?;
        }
        LayerKind::FullyConnected(f) => {
            let mut x = arg(g, 0, false);
            if plan.in_rank(i, 0) == 4 {
                // The canonical weight columns follow an NCHW flatten.
                let flat = format!("{name}/flat");
                g.node(
                    "Flatten",
                    &format!("{name}/flatten"),
                    &[&x],
                    &flat,
                    vec![a_int("axis", 1)],
                );
                x = flat;
            }
            let wt = param(l, &f.weights, "Weights")?;
            let w = g.f32_init(&format!("{name}.weight"), &wt.shape, &wt.data);
            let mut ins = vec![x, w];
            if f.bias.is_some() {
                let b = param(l, &f.bias, "Bias")?;
                ins.push(g.f32_init(&format!("{name}.bias"), &b.shape, &b.data));
            }
            let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
            g.node("Gemm", name, &ins, &out, vec![a_int("transB", 1)]);
        }
        LayerKind::BatchNorm(b) => {
            let x = arg(g, 0, false);
            let s = param(l, &b.scale, "Scale")?;
            let o = param(l, &b.offset, "Offset")?;
            let m = values(l, b.mean.as_ref(), "TrainedMean")?;
            let v = values(l, b.variance.as_ref(), "TrainedVariance")?;
            let s = g.f32_init(&format!("{name}.weight"), &s.shape, &s.data);
            let o = g.f32_init(&format!("{name}.bias"), &o.shape, &o.data);
            let m = g.f32_init(&format!("{name}.running_mean"), &m.shape, &m.data);
            let v = g.f32_init(&format!("{name}.running_var"), &v.shape, &v.data);
            g.node(
                "BatchNormalization",
                name,
                &[&x, &s, &o, &m, &v],
                &out,
                vec![a_float("epsilon", bn_epsilon(b))],
            );
        }
        LayerKind::GroupNorm(gn) => {
            // Group normalization without GroupNormalization (opset 21+ only): normalize each
            // group as one instance, then the per-channel affine transform.
            let x = arg(g, 0, true);
            let s = param(l, &gn.scale, "Scale")?;
            let o = param(l, &gn.offset, "Offset")?;
            let c = gn.channels;
            let groups = gn.groups.max(1);
            let gshape = g.i64_init(
                &format!("{name}.group_shape"),
                &[3],
                &[0, groups as i64, -1],
            );
            let grouped = format!("{name}/grouped");
            g.node(
                "Reshape",
                &format!("{name}/group"),
                &[&x, &gshape],
                &grouped,
                vec![],
            );
            let ones = g.f32_init(&format!("{name}.ones"), &[groups], &vec![1.0; groups]);
            let zeros = g.f32_init(&format!("{name}.zeros"), &[groups], &vec![0.0; groups]);
            let normed = format!("{name}/normalized");
            g.node(
                "InstanceNormalization",
                &format!("{name}/instancenorm"),
                &[&grouped, &ones, &zeros],
                &normed,
                vec![a_float("epsilon", gn.epsilon)],
            );
            let shape = format!("{name}/shape");
            g.node("Shape", &format!("{name}/shape"), &[&x], &shape, vec![]);
            let back = format!("{name}/ungrouped");
            g.node(
                "Reshape",
                &format!("{name}/ungroup"),
                &[&normed, &shape],
                &back,
                vec![],
            );
            let w = g.f32_init(&format!("{name}.weight"), &[c, 1, 1], &s.data);
            let b = g.f32_init(&format!("{name}.bias"), &[c, 1, 1], &o.data);
            let scaled = format!("{name}/scaled");
            g.node(
                "Mul",
                &format!("{name}/scale"),
                &[&back, &w],
                &scaled,
                vec![],
            );
            g.node("Add", name, &[&scaled, &b], &out, vec![]);
        }
        LayerKind::Lrn(n) => {
            // MATLAB's formula x / (k + alpha * sum_window(x^2) / n)^beta is ONNX's LRN, and
            // ONNX's window [c - floor((n-1)/2), c + ceil((n-1)/2)] is MATLAB's for even n too.
            let x = arg(g, 0, true);
            if n.window % 2 == 1 {
                g.node(
                    "LRN",
                    name,
                    &[&x],
                    &out,
                    vec![
                        a_int("size", n.window as i64),
                        a_float("alpha", n.alpha),
                        a_float("beta", n.beta),
                        a_float("bias", n.k),
                    ],
                );
            } else {
                // onnxruntime implements odd sizes only: the same formula from basic ops, the
                // window mean as a 3-D average pool over [N, 1, C, H, W].
                let t = |s: &str| format!("{name}/{s}");
                let before = (n.window - 1) / 2;
                let after = n.window / 2;
                let axis1 = g.i64_init(&t("axis1"), &[1], &[1]);
                let pads = g.i64_init(
                    &t("channel_pads"),
                    &[10],
                    &[0, 0, before as i64, 0, 0, 0, 0, after as i64, 0, 0],
                );
                let alpha = g.scalar(n.alpha as f32);
                let k = g.scalar(n.k as f32);
                let beta = g.scalar(n.beta as f32);
                g.node("Mul", &t("square"), &[&x, &x], &t("square"), vec![]);
                g.node(
                    "Unsqueeze",
                    &t("unsqueeze"),
                    &[&t("square"), &axis1],
                    &t("unsqueeze"),
                    vec![],
                );
                g.node(
                    "Pad",
                    &t("pad"),
                    &[&t("unsqueeze"), &pads],
                    &t("pad"),
                    vec![],
                );
                g.node(
                    "AveragePool",
                    &t("window_mean"),
                    &[&t("pad")],
                    &t("window_mean"),
                    vec![
                        a_ints("kernel_shape", &[n.window as i64, 1, 1]),
                        a_ints("strides", &[1, 1, 1]),
                    ],
                );
                g.node(
                    "Squeeze",
                    &t("squeeze"),
                    &[&t("window_mean"), &axis1],
                    &t("squeeze"),
                    vec![],
                );
                g.node(
                    "Mul",
                    &t("scaled"),
                    &[&t("squeeze"), &alpha],
                    &t("scaled"),
                    vec![],
                );
                g.node(
                    "Add",
                    &t("shifted"),
                    &[&t("scaled"), &k],
                    &t("shifted"),
                    vec![],
                );
                g.node("Pow", &t("pow"), &[&t("shifted"), &beta], &t("pow"), vec![]);
                g.node("Div", name, &[&x, &t("pow")], &out, vec![]);
            }
        }
        LayerKind::Activation(a) => {
            let x = arg(g, 0, false);
            activation(g, plan.opts.opset, name, &x, &out, *a);
        }
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
            let x = arg(g, 0, true);
            let pd = pads(&p.padding);
            let mut attrs = vec![
                a_ints("kernel_shape", &ints(p.size)),
                a_ints("strides", &ints(p.stride)),
                a_ints("pads", &onnx_pads(pd)),
            ];
            let op = if matches!(l.kind, LayerKind::MaxPool2d(_)) {
                "MaxPool"
            } else {
                attrs.push(a_int("count_include_pad", p.count_include_pad as i64));
                "AveragePool"
            };
            if pd.top >= p.size[0]
                || pd.bottom >= p.size[0]
                || pd.left >= p.size[1]
                || pd.right >= p.size[1]
            {
                return Err(layer_err(
                    l,
                    format!(
                        "padding {:?} is not smaller than the pool size {:?}",
                        pd, p.size
                    ),
                ));
            }
            g.node(op, name, &[&x], &out, attrs);
        }
        LayerKind::GlobalAvgPool => {
            let x = arg(g, 0, true);
            g.node("GlobalAveragePool", name, &[&x], &out, vec![]);
        }
        LayerKind::GlobalMaxPool => {
            let x = arg(g, 0, true);
            g.node("GlobalMaxPool", name, &[&x], &out, vec![]);
        }
        LayerKind::Addition { .. } | LayerKind::Multiplication { .. } => {
            let (op, short) = if matches!(l.kind, LayerKind::Addition { .. }) {
                ("Add", "add")
            } else {
                ("Mul", "mul")
            };
            let four = plan.lift_all(i);
            let xs: Vec<String> = (0..l.inputs.len()).map(|k| arg(g, k, four)).collect();
            if xs.len() == 1 {
                g.node("Identity", name, &[&xs[0]], &out, vec![]);
            }
            let mut acc = xs[0].clone();
            for (k, x) in xs.iter().enumerate().skip(1) {
                let last = k == xs.len() - 1;
                let (node, value) = if last {
                    (name.to_string(), out.clone())
                } else {
                    (format!("{name}/{short}{k}"), format!("{name}/{short}{k}"))
                };
                g.node(op, &node, &[&acc, x], &value, vec![]);
                acc = value;
            }
        }
        LayerKind::DepthConcat { .. } | LayerKind::Concat { .. } => {
            let four = plan.lift_all(i);
            let xs: Vec<String> = (0..l.inputs.len()).map(|k| arg(g, k, four)).collect();
            let xs: Vec<&str> = xs.iter().map(|s| s.as_str()).collect();
            g.node(
                "Concat",
                name,
                &xs,
                &out,
                vec![a_int("axis", concat_axis(&l.kind) as i64)],
            );
        }
        LayerKind::Flatten => {
            // MATLAB flattens H x W x C column-major (h fastest) = NCWH row-major.
            let x = arg(g, 0, true);
            let t = format!("{name}/nchw_to_ncwh");
            g.node(
                "Transpose",
                &format!("{name}/transpose"),
                &[&x],
                &t,
                vec![a_ints("perm", &[0, 1, 3, 2])],
            );
            g.node("Flatten", name, &[&t], &out, vec![a_int("axis", 1)]);
        }
        LayerKind::Softmax => {
            let x = arg(g, 0, false);
            g.node("Softmax", name, &[&x], &out, vec![a_int("axis", 1)]);
        }
        other => {
            return Err(layer_err(
                l,
                format!("{other:?} cannot be exported to ONNX"),
            ));
        }
    }
    Ok(())
}

/// ONNX's name of a MATLAB gate or state activation. ONNX's HardSigmoid defaults
/// (alpha 0.2, beta 0.5) are MATLAB's hard sigmoid, `max(0, min(1, 0.2 x + 0.5))`.
fn rnn_activation(name: &str) -> &'static str {
    match name {
        "hard-sigmoid" => "HardSigmoid",
        "softsign" => "Softsign",
        "tanh" => "Tanh",
        _ => "Sigmoid",
    }
}

/// An LSTM/BiLSTM/GRU layer on `[N, C, T]` → `[N, H*D, T]` ('sequence') or `[N, H*D]` ('last').
fn recurrent(
    g: &mut Graph,
    l: &crate::net::layer::Layer,
    x: &str,
    out: &str,
    r: &crate::net::layer::Recurrent,
) -> Result<(), ExportError> {
    let name = l.name.as_str();
    let lstm = matches!(l.kind, LayerKind::Lstm(_));
    let gates = if lstm { 4 } else { 3 };
    let rw = RecurrentWeights::new(l, r, gates)?;
    let (h, c, dirs) = (rw.hidden, rw.input_size, rw.directions());
    // ONNX gate orders: LSTM (i, o, f, c) from MATLAB's (i, f, g, o); GRU (z, r, h) from
    // MATLAB's (r, z, h).
    let order: &[usize] = if lstm { &[0, 3, 1, 2] } else { &[1, 0, 2] };
    let mut w = Vec::new();
    let mut rr = Vec::new();
    let mut b = Vec::new();
    for d in 0..dirs {
        w.extend(rw.reorder(&rw.w[d], c, order));
        rr.extend(rw.reorder(&rw.r[d], h, order));
        b.extend(rw.reorder(&rw.wb[d], 1, order));
        b.extend(rw.reorder(&rw.rb[d], 1, order));
    }
    let gh = gates * h;
    let t = |s: &str| format!("{name}/{s}");
    let w = g.f32_init(&format!("{name}.W"), &[dirs, gh, c], &w);
    let rr = g.f32_init(&format!("{name}.R"), &[dirs, gh, h], &rr);
    let b = g.f32_init(&format!("{name}.B"), &[dirs, 2 * gh], &b);
    g.node(
        "Transpose",
        &t("to_tnc"),
        &[x],
        &t("tnc"),
        vec![a_ints("perm", &[2, 0, 1])],
    );
    let mut ins: Vec<String> = vec![t("tnc"), w, rr, b];
    // Stored initial states, broadcast over the batch: [D, 1, H] expanded to [D, N, H].
    let h0: Vec<f32> = rw.h0.concat();
    let c0: Vec<f32> = rw.c0.concat();
    let nonzero = h0.iter().any(|&v| v != 0.0) || (lstm && c0.iter().any(|&v| v != 0.0));
    if nonzero {
        g.node("Shape", &t("shape"), &[&t("tnc")], &t("shape"), vec![]);
        let idx = g.i64_init(&format!("{name}.batch_index"), &[1], &[1]);
        g.node(
            "Gather",
            &t("batch"),
            &[&t("shape"), &idx],
            &t("batch"),
            vec![a_int("axis", 0)],
        );
        let dd = g.i64_init(&format!("{name}.directions"), &[1], &[dirs as i64]);
        let hh = g.i64_init(&format!("{name}.hidden"), &[1], &[h as i64]);
        g.node(
            "Concat",
            &t("state_shape"),
            &[&dd, &t("batch"), &hh],
            &t("state_shape"),
            vec![a_int("axis", 0)],
        );
        let h0 = g.f32_init(&format!("{name}.initial_h"), &[dirs, 1, h], &h0);
        g.node(
            "Expand",
            &t("expand_h"),
            &[&h0, &t("state_shape")],
            &t("initial_h"),
            vec![],
        );
        ins.push(String::new()); // sequence_lens
        ins.push(t("initial_h"));
        if lstm {
            let c0 = g.f32_init(&format!("{name}.initial_c"), &[dirs, 1, h], &c0);
            g.node(
                "Expand",
                &t("expand_c"),
                &[&c0, &t("state_shape")],
                &t("initial_c"),
                vec![],
            );
            ins.push(t("initial_c"));
        }
    }
    let state = rnn_activation(&r.state_activation);
    let gate = rnn_activation(&r.gate_activation);
    let per_dir: Vec<&str> = if lstm {
        vec![gate, state, state]
    } else {
        vec![gate, state]
    };
    let mut acts = per_dir.clone();
    if dirs == 2 {
        acts.extend(per_dir);
    }
    let mut a_acts = attr("activations", AttributeType::STRINGS);
    a_acts.strings = acts.iter().map(|s| s.as_bytes().to_vec().into()).collect();
    let mut attrs = vec![
        a_int("hidden_size", h as i64),
        a_str(
            "direction",
            if dirs == 2 {
                "bidirectional"
            } else {
                "forward"
            },
        ),
        a_acts,
    ];
    if !lstm {
        let before = r.reset_gate_mode == "before-multiplication";
        attrs.push(a_int("linear_before_reset", if before { 0 } else { 1 }));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    g.node(
        if lstm { "LSTM" } else { "GRU" },
        name,
        &ins,
        &t("Y"),
        attrs,
    );
    // Y [T, D, N, H] → [N, D, H, T] → [N, D*H, T] (forward units first, as MATLAB).
    g.node(
        "Transpose",
        &t("to_ndht"),
        &[&t("Y")],
        &t("ndht"),
        vec![a_ints("perm", &[2, 1, 3, 0])],
    );
    let shape = g.i64_init(
        &format!("{name}.out_shape"),
        &[3],
        &[0, (dirs * h) as i64, -1],
    );
    if r.return_sequence {
        g.node("Reshape", &t("reshape"), &[&t("ndht"), &shape], out, vec![]);
    } else {
        // MATLAB's 'last': the last time step of the output sequence.
        g.node(
            "Reshape",
            &t("reshape"),
            &[&t("ndht"), &shape],
            &t("sequence"),
            vec![],
        );
        let last = g.i64_init(&format!("{name}.last"), &[], &[-1]);
        g.node(
            "Gather",
            &t("last"),
            &[&t("sequence"), &last],
            out,
            vec![a_int("axis", 2)],
        );
    }
    Ok(())
}

fn activation(g: &mut Graph, opset: i64, name: &str, x: &str, out: &str, a: Activation) {
    match a {
        Activation::Relu => g.node("Relu", name, &[x], out, vec![]),
        Activation::LeakyRelu { scale } => {
            g.node("LeakyRelu", name, &[x], out, vec![a_float("alpha", scale)])
        }
        Activation::ClippedRelu { ceiling } => {
            let lo = g.scalar(0.0);
            let hi = g.scalar(ceiling as f32);
            g.node("Clip", name, &[x, &lo, &hi], out, vec![])
        }
        Activation::Elu { alpha } => g.node("Elu", name, &[x], out, vec![a_float("alpha", alpha)]),
        Activation::Tanh => g.node("Tanh", name, &[x], out, vec![]),
        Activation::Sigmoid => g.node("Sigmoid", name, &[x], out, vec![]),
        Activation::Swish => {
            let s = format!("{name}/sigmoid");
            g.node("Sigmoid", &s, &[x], &s, vec![]);
            g.node("Mul", name, &[x, &s], out, vec![]);
        }
        Activation::Gelu { tanh } if opset >= 20 => g.node(
            "Gelu",
            name,
            &[x],
            out,
            vec![a_str("approximate", if tanh { "tanh" } else { "none" })],
        ),
        Activation::Gelu { tanh: false } => {
            // 0.5 x (1 + erf(x / sqrt(2)))
            let sqrt2 = g.scalar(std::f32::consts::SQRT_2);
            let one = g.scalar(1.0);
            let half = g.scalar(0.5);
            let t = |s: &str| format!("{name}/{s}");
            g.node("Div", &t("div"), &[x, &sqrt2], &t("div"), vec![]);
            g.node("Erf", &t("erf"), &[&t("div")], &t("erf"), vec![]);
            g.node("Add", &t("add"), &[&t("erf"), &one], &t("add"), vec![]);
            g.node("Mul", &t("mul"), &[x, &t("add")], &t("mul"), vec![]);
            g.node("Mul", name, &[&t("mul"), &half], out, vec![]);
        }
        Activation::Gelu { tanh: true } => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            let c = g.scalar((2.0 / std::f64::consts::PI).sqrt() as f32);
            let k = g.scalar(0.044715);
            let one = g.scalar(1.0);
            let half = g.scalar(0.5);
            let t = |s: &str| format!("{name}/{s}");
            g.node("Mul", &t("x2"), &[x, x], &t("x2"), vec![]);
            g.node("Mul", &t("x3"), &[&t("x2"), x], &t("x3"), vec![]);
            g.node("Mul", &t("kx3"), &[&t("x3"), &k], &t("kx3"), vec![]);
            g.node("Add", &t("inner"), &[x, &t("kx3")], &t("inner"), vec![]);
            g.node(
                "Mul",
                &t("scaled"),
                &[&t("inner"), &c],
                &t("scaled"),
                vec![],
            );
            g.node("Tanh", &t("tanh"), &[&t("scaled")], &t("tanh"), vec![]);
            g.node("Add", &t("add"), &[&t("tanh"), &one], &t("add"), vec![]);
            g.node("Mul", &t("mul"), &[x, &t("add")], &t("mul"), vec![]);
            g.node("Mul", name, &[&t("mul"), &half], out, vec![]);
        }
    }
}
