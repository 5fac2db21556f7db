//! Max and average pooling, global pooling.

use super::graph::{Ctx, Graph, a_int, a_ints, ints, onnx_pads};
use crate::export::{ExportError, layer_err, pads};
use crate::net::layer::{LayerKind, Pool2d, Unpool2d};

/// Max or average pooling.
pub(super) fn pool2d(g: &mut Graph, cx: &Ctx, p: &Pool2d) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, true);
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
    g.node(op, name, &[&x], out, attrs);
    Ok(())
}

pub(super) fn global_avg_pool(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, true);
    g.node("GlobalAveragePool", name, &[&x], out, vec![]);
    Ok(())
}

pub(super) fn global_max_pool(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, true);
    g.node("GlobalMaxPool", name, &[&x], out, vec![]);
    Ok(())
}

// --- max unpooling ---

/// Max unpooling: a MaxPool node with its `Indices` output on the max pooling layer's input
/// (the indices the pooling layer computed; ONNX's indices, like matcnn's, are the first maximum
/// of each window in row-major order, flattened over N, C, H, W without the padding), then
/// `MaxUnpool` with the pooling input's shape as `output_shape`.
pub(super) fn max_unpool2d(g: &mut Graph, cx: &Ctx, u: &Unpool2d) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let p = &u.window;
    let pd = pads(&p.padding);
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
    let x = cx.arg(g, 0, true);
    let pooled_input = cx.arg(g, 1, true);
    let window = || {
        vec![
            a_ints("kernel_shape", &ints(p.size)),
            a_ints("strides", &ints(p.stride)),
            a_ints("pads", &onnx_pads(pd)),
        ]
    };
    let indices = format!("{name}/indices");
    let mut pool = onnx_ir::NodeProto::default();
    pool.op_type = "MaxPool".into();
    pool.name = format!("{name}/maxpool");
    pool.input = vec![pooled_input.clone()];
    pool.output = vec![format!("{name}/pooled"), indices.clone()];
    pool.attribute = window();
    g.nodes.push(pool);
    let shape = format!("{name}/size");
    g.node("Shape", &shape, &[&pooled_input], &shape, vec![]);
    g.node("MaxUnpool", name, &[&x, &indices, &shape], out, window());
    Ok(())
}
