//! Object detection: the YOLO v2 transform (`net::layers::detect` documents the layout).

use super::{Func, Op, func};
use crate::model::ModelError;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};

// Func codes (saved in records: never renumber). 40 and up: this family.
pub(super) const YOLOV2_TRANSFORM: usize = 40;
pub(super) const CODES: [usize; 1] = [YOLOV2_TRANSFORM];

/// `a` is the number of anchors.
pub(super) fn yolov2_transform(anchors: usize) -> Result<Op, ModelError> {
    Ok(func(YOLOV2_TRANSFORM, anchors as f64))
}

/// `f` (one of this file's codes) on `x`.
pub(super) fn forward(f: &Func, x: Tensor<4>) -> Tensor<4> {
    match f.code {
        YOLOV2_TRANSFORM => yolov2_transform_forward(x, f.a as usize),
        _ => x,
    }
}

/// `x` `[N, A*(5+K), H, W]`, prediction `k` of anchor `a` at channel `k*A + a`: sigmoid on IoU, x,
/// y (k = 0..3), exp on w, h (k = 3, 4), softmax over the K class scores (k >= 5) per anchor.
pub(crate) fn yolov2_transform_forward(x: Tensor<4>, anchors: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let a = anchors.max(1);
    let k = c / a;
    let t = x.reshape([n, k, a, h, w]);
    let iou_xy = sigmoid(t.clone().narrow(1, 0, 3));
    let wh = t.clone().narrow(1, 3, 2).exp();
    let classes = softmax(t.narrow(1, 5, k - 5), 1);
    Tensor::cat(vec![iou_xy, wh, classes], 1).reshape([n, c, h, w])
}
