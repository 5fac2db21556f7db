//! Max and average pooling, global pooling.

use super::graph::{Ctx, Graph, a_int, a_ints, a_str, ints, onnx_pads};
use crate::export::{ExportError, layer_err, pads};
use crate::net::layer::{LayerKind, Pool1d, Pool2d, Unpool2d};

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

/// `MaxPool` (`max`) or `AveragePool` on `[N, C, T]`; 'same' as `auto_pad = SAME_UPPER`.
pub(super) fn pool1d(g: &mut Graph, cx: &Ctx, p: &Pool1d, max: bool) -> Result<(), ExportError> {
    let (l, name, out) = (cx.l, cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    let mut attrs = vec![
        a_ints("kernel_shape", &[p.size as i64]),
        a_ints("strides", &[p.stride as i64]),
    ];
    match p.padding.static_pads(p.size, p.stride, 1) {
        // Pads that depend on T: MATLAB's 'same' split is ONNX's SAME_UPPER.
        None => attrs.push(a_str("auto_pad", "SAME_UPPER")),
        Some([a, b]) => {
            if a >= p.size || b >= p.size {
                return Err(layer_err(
                    l,
                    format!(
                        "padding [{a} {b}] is not smaller than the pool size {}",
                        p.size
                    ),
                ));
            }
            attrs.push(a_ints("pads", &[a as i64, b as i64]));
        }
    }
    if !max {
        attrs.push(a_int("count_include_pad", p.count_include_pad as i64));
    }
    let op = if max { "MaxPool" } else { "AveragePool" };
    g.node(op, name, &[&x], out, attrs);
    Ok(())
}

/// Global pooling over time: `[N, C, T]` → `[N, C]`.
pub(super) fn global_pool1d(g: &mut Graph, cx: &Ctx, op: &str) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    let pooled = format!("{name}/pooled");
    g.node(op, &format!("{name}/pool"), &[&x], &pooled, vec![]);
    g.node("Flatten", name, &[&pooled], out, vec![a_int("axis", 1)]);
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
