//! Pooling layers in `model.rs`.

use super::{Cx, Stmt, arr2};
use crate::export::pads;
use crate::net::layer::{Pool2d, Unpool2d};

/// MaxPool2d (`max`) or AvgPool2d with MATLAB's padding.
pub(super) fn pool2d(cx: &mut Cx, p: &Pool2d, max: bool) -> Stmt {
    cx.import("use burn::nn::PaddingConfig2d;");
    let pd = pads(&p.padding);
    let padding = format!(
        "PaddingConfig2d::Explicit({}, {}, {}, {})",
        pd.top, pd.left, pd.bottom, pd.right
    );
    if max {
        cx.import("use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};");
        cx.field(
            "MaxPool2d",
            format!(
                "MaxPool2dConfig::new({}).with_strides({}).with_padding({padding}).init()",
                arr2(p.size),
                arr2(p.stride)
            ),
        );
    } else {
        cx.import("use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};");
        cx.field(
            "AvgPool2d",
            format!(
                "AvgPool2dConfig::new({}).with_strides({}).with_padding({padding}).with_count_include_pad({}).init()",
                arr2(p.size),
                arr2(p.stride),
                p.count_include_pad
            ),
        );
    }
    cx.forward(true)
}

pub(super) fn global_avg(cx: &mut Cx) -> Stmt {
    Stmt::Let(format!("{}.mean_dim(3).mean_dim(2)", cx.arg(0, true)))
}

pub(super) fn global_max(cx: &mut Cx) -> Stmt {
    Stmt::Let(format!("{}.max_dim(3).max_dim(2)", cx.arg(0, true)))
}

// --- max unpooling ---

/// The helper written into `model.rs` (also compiled by the tests below).
const MAX_UNPOOL: &str = include_str!("max_unpool_fn.rs");

/// `max_unpool` (the helper above) on `[x, the pooling layer's input]`.
pub(super) fn max_unpool2d(cx: &mut Cx, u: &Unpool2d) -> Stmt {
    if !cx.helpers.contains("fn max_unpool(") {
        cx.helpers.push('\n');
        cx.helpers.push_str(MAX_UNPOOL);
    }
    let p = &u.window;
    let pd = pads(&p.padding);
    let x = cx.arg(0, true);
    let pooled_input = cx.arg(1, true);
    Stmt::Let(format!(
        "max_unpool({x}, {pooled_input}, {}, {}, [({}, {}), ({}, {})])",
        arr2(p.size),
        arr2(p.stride),
        pd.top,
        pd.bottom,
        pd.left,
        pd.right
    ))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    include!("max_unpool_fn.rs");

    #[test]
    fn the_generated_helper_compiles_and_unpools() {
        let dev = Device::flex();
        let p = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 5.0, 2.0, 3.0], [1, 1, 2, 2]),
            &dev,
        );
        let x = Tensor::<4>::from_data(TensorData::new(vec![7.0f32], [1, 1, 1, 1]), &dev);
        let y = max_unpool(x, p, [2, 2], [2, 2], [(0, 0), (0, 0)]);
        let v = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert_eq!(v, vec![0.0, 7.0, 0.0, 0.0]);
    }
}
