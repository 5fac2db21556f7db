//! Max and average pooling, global pooling.

use super::graph::{Ctx, Graph, a_int, a_ints, ints, onnx_pads};
use crate::export::{ExportError, layer_err, pads};
use crate::net::layer::{LayerKind, Pool2d};

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
