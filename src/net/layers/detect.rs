//! Object detection layers: YOLO v2's transform layer and its output (loss) layer.
//!
//! `YOLOv2TransformLayer` (MATLAB's `yolov2TransformLayer(numAnchors)`): the input's `A * (5 + K)`
//! channels hold, for A anchors and K classes, the prediction `k` of anchor `a` at channel
//! `k * A + a` (MATLAB reshapes the `H x W x C` activation to `H*W x A x C/A`, so the anchor is the
//! fastest index). Predictions per anchor, in order: IoU (objectness), x, y, w, h, then K class
//! scores. The layer applies a sigmoid to objectness, x and y, an exponential to w and h and a
//! softmax over the K class scores, each anchor on its own; the output keeps the input's layout.
//!
//! `YOLOv2OutputLayer` only computes the training loss: at inference it passes its input through
//! (MATLAB's `predict` returns the transform's output). It keeps the stored `AnchorBoxes` (`[height
//! width]` rows, in pixels of the network input) and class names, which `matcnn detect` uses when
//! the network is not inside a `yolov2ObjectDetector`.

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, Shape};
use crate::net::shape::{self, Declared};

use super::{Imported, Names, plural};

pub const YOLOV2_TRANSFORM: Names = Names {
    kind: "Yolov2Transform",
    stem: "yolov2Transform",
};
pub const YOLOV2_OUTPUT: Names = Names {
    kind: "Yolov2Output",
    stem: "yolov2OutputLayer",
};

/// Predictions per anchor before the class scores: IoU, x, y, w, h.
pub const BOX_PREDICTIONS: usize = 5;

/// YOLO v2 layer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "YOLOv2TransformLayer" => {
            let anchors = f.usize("NumAnchorBoxes")?;
            if anchors == 0 {
                return Err(f.err("NumAnchorBoxes", "a positive number of anchors", "0"));
            }
            LayerKind::Yolov2Transform { anchors }
        }
        "YOLOv2OutputLayer" => {
            let anchor_boxes = match f.numeric("AnchorBoxes")? {
                None => Vec::new(),
                Some(a) => {
                    let v = a.real.to_f64_vec();
                    match a.dims[..] {
                        [m, 2] if v.len() == m * 2 => (0..m).map(|r| [v[r], v[m + r]]).collect(),
                        _ => {
                            return Err(f.err(
                                "AnchorBoxes",
                                "an M x 2 matrix of [height width] rows",
                                format!("{:?}", a.dims),
                            ));
                        }
                    }
                }
            };
            let classes = ["Classes", "Categories", "ClassNames"]
                .iter()
                .find_map(|n| f.get(n))
                .map(super::io::class_names)
                .unwrap_or_default();
            LayerKind::Yolov2Output {
                anchor_boxes,
                classes,
            }
        }
        _ => return Ok(None),
    }))
}

/// The transform keeps its input's shape; the channels must be `anchors * (5 + K)`, K >= 1.
pub(crate) fn transform_output(
    anchors: usize,
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    let Some(x) = shape::one_input(ins, ctx)? else {
        return Ok(None);
    };
    if anchors == 0 || x.c % anchors != 0 || x.c / anchors <= BOX_PREDICTIONS {
        return Err(ctx.shape(
            "input channels",
            format!(
                "NumAnchorBoxes x (5 + number of classes) = {anchors} x (5 + K) channels, K >= 1"
            ),
            format!("{} channels", x.c),
        ));
    }
    Ok(Some(x))
}

pub(crate) fn describe_transform(anchors: usize) -> String {
    format!(
        "YOLO v2 transform, {} (sigmoid on IoU, x, y; exp on w, h; softmax over classes)",
        plural(anchors, "anchor")
    )
}

pub(crate) fn describe_output(anchor_boxes: &[[f64; 2]], classes: &[String]) -> String {
    let boxes: Vec<String> = anchor_boxes
        .iter()
        .map(|[h, w]| format!("{h}x{w}"))
        .collect();
    format!(
        "YOLO v2 output (loss only: passes its input through), anchors [{}], {}",
        boxes.join(" "),
        match classes.len() {
            1 => "1 class".to_string(),
            n => format!("{n} classes"),
        }
    )
}
