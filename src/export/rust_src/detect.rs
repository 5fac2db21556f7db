//! The YOLO v2 transform in `model.rs` (`net::layers::detect` documents the channel layout).

use super::{Cx, Stmt};

/// The helper written into `model.rs` (also compiled by the tests below).
const YOLOV2_TRANSFORM: &str = include_str!("yolov2_transform_fn.rs");

pub(super) fn yolov2_transform(cx: &mut Cx, anchors: usize) -> Stmt {
    cx.import("use burn::tensor::activation;");
    if !cx.helpers.contains("fn yolov2_transform(") {
        cx.helpers.push('\n');
        cx.helpers.push_str(YOLOV2_TRANSFORM);
    }
    Stmt::Let(format!("yolov2_transform({}, {anchors})", cx.arg(0, true)))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::activation;
    include!("yolov2_transform_fn.rs");

    #[test]
    fn the_generated_helper_compiles_and_transforms() {
        let dev = Device::flex();
        // One anchor, 2 classes: IoU 0, x 1, y -1, w ln 2, h 0, class scores ln 3, 0.
        let v = vec![0.0f32, 1.0, -1.0, 2f32.ln(), 0.0, 3f32.ln(), 0.0];
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, 7, 1, 1]), &dev);
        let y = yolov2_transform(x, 1);
        let got = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let want = [0.5, 0.7310586, 0.2689414, 2.0, 1.0, 0.75, 0.25];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }
}
