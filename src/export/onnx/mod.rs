//! ONNX export: one or a few standard ONNX nodes per MATLAB layer, named after the layer, with
//! the weights as initializers named `<layer>.<parameter>`.
//!
//! The protobuf types are the ones `onnx-ir` (Burn's ONNX crate) generates from the official
//! `onnx.proto` and re-exports; nested types it keeps private (`OperatorSetIdProto`,
//! `StringStringEntryProto`, tensor type and dimension) are reached through the generated
//! accessors and `Default::default()`.

// Protobuf messages are built field by field.
#![allow(clippy::field_reassign_with_default)]

mod activation;
mod combine;
mod conv;
mod detect;
mod graph;
mod io;
mod norm;
mod pool;
mod recurrent;
mod reshape;
mod transformer;

use super::{ExportError, ExportOptions, Plan, layer_err};
use crate::net::layer::{LayerKind, Network};
use graph::{Ctx, Dim, Graph, Names, a_int, dim, value_info};
use onnx_ir::{GraphProto, Message, ModelProto};

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

pub fn export(net: &Network, opts: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    if !(MIN_OPSET..=MAX_OPSET).contains(&opts.opset) {
        return Err(ExportError::Unsupported(format!(
            "ONNX opset {} is not supported (use {MIN_OPSET} to {MAX_OPSET})",
            opts.opset
        )));
    }
    let plan = Plan::new(net, opts)?;
    let names = Names::new(&plan);
    let mut g = Graph::new();
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

/// Emits the nodes of layer `i`.
fn layer(g: &mut Graph, plan: &Plan, names: &Names, i: usize) -> Result<(), ExportError> {
    let cx = Ctx::new(plan, names, i);
    match &cx.l.kind {
        LayerKind::ImageInput { .. }
        | LayerKind::FeatureInput { .. }
        | LayerKind::SequenceInput { .. } => io::normalization(g, &cx),
        LayerKind::Conv2d(c) => conv::conv2d(g, &cx, c),
        LayerKind::ConvTranspose2d(c) => conv::conv_transpose2d(g, &cx, c),
        LayerKind::FullyConnected(f) => conv::fully_connected(g, &cx, f),
        LayerKind::BatchNorm(b) => norm::batch_norm(g, &cx, b),
        LayerKind::GroupNorm(gn) => norm::group_norm(g, &cx, gn),
        LayerKind::Lrn(n) => norm::lrn(g, &cx, n),
        LayerKind::Activation(a) => activation::activation(g, &cx, *a),
        LayerKind::Softmax => activation::softmax(g, &cx),
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => pool::pool2d(g, &cx, p),
        LayerKind::GlobalAvgPool => pool::global_avg_pool(g, &cx),
        LayerKind::GlobalMaxPool => pool::global_max_pool(g, &cx),
        LayerKind::Addition { .. } | LayerKind::Multiplication { .. } => {
            combine::elementwise(g, &cx)
        }
        LayerKind::DepthConcat { .. } | LayerKind::Concat { .. } => combine::concat(g, &cx),
        LayerKind::Flatten if cx.plan.in_rank(i, 0) == 3 => reshape::flatten_sequence(g, &cx),
        LayerKind::Flatten => reshape::flatten(g, &cx),
        LayerKind::SequenceFolding => reshape::sequence_folding(g, &cx),
        LayerKind::SequenceUnfolding => reshape::sequence_unfolding(g, &cx),
        LayerKind::Lstm(r) | LayerKind::Gru(r) => recurrent::recurrent(g, &cx, r),
        LayerKind::Conv1d(c) => conv::conv1d(g, &cx, c),
        LayerKind::ConvTranspose1d(c) => conv::conv_transpose1d(g, &cx, c),
        LayerKind::MaxPool1d(p) => pool::pool1d(g, &cx, p, true),
        LayerKind::AvgPool1d(p) => pool::pool1d(g, &cx, p, false),
        LayerKind::GlobalAvgPool1d => pool::global_pool1d(g, &cx, "GlobalAveragePool"),
        LayerKind::GlobalMaxPool1d => pool::global_pool1d(g, &cx, "GlobalMaxPool"),
        LayerKind::LayerNorm(n) => norm::layer_norm(g, &cx, n),
        LayerKind::LstmProjected(p) | LayerKind::GruProjected(p) => recurrent::projected(g, &cx, p),
        LayerKind::Transformer(t) => transformer::transformer(g, &cx, t),
        LayerKind::MaxUnpool2d(u) => pool::max_unpool2d(g, &cx, u),
        LayerKind::Yolov2Transform { anchors } => detect::yolov2_transform(g, &cx, *anchors),
        // Compute nothing (never emitted) or rejected by the plan.
        LayerKind::Dropout { .. }
        | LayerKind::Resize2d { .. }
        | LayerKind::ClassificationOutput { .. }
        | LayerKind::RegressionOutput
        | LayerKind::Yolov2Output { .. }
        | LayerKind::Unsupported { .. } => Err(layer_err(
            cx.l,
            format!("{:?} cannot be exported to ONNX", cx.l.kind),
        )),
    }
}
