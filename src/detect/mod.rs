//! YOLO v2 detection as MATLAB's `yolov2ObjectDetector.detect` does it, from the network's output
//! (the YOLO v2 transform's activation, `net::layers::detect` documents its channels):
//!
//! 1. the image is resized to the training image size and rescaled to [0, 1] (MATLAB: `imresize`,
//!    then `rescale`, i.e. `(I - min) / (max - min)` over the whole image): [`rescale`];
//! 2. per grid cell (row, column) and anchor `a` (`[h w]` in pixels of the network input): centre
//!    `((sigmoid x + column) dx, (sigmoid y + row) dy)`, size `(exp w * anchor w, exp h * anchor h)`
//!    with `dx, dy` the training size over the grid size, score = IoU x the largest class
//!    probability, label = that class; kept when score >= the threshold;
//! 3. corners clipped to `[1, width] x [1, height]` of the training size, scaled to the original
//!    image with MATLAB's `scaleX1X2Y1Y2` (floored pixel coordinates) and turned into `[x y w h]`
//!    (`w = x2 - x1 + 1`); boxes outside MinSize `[1 1]` / MaxSize (the image size) dropped;
//! 4. non-maximum suppression per class as `selectStrongestBboxMulticlass(bboxes, scores, labels,
//!    'RatioType', 'Union', 'OverlapThreshold', 0.5)`: greedy, strongest first, a box is removed
//!    when its intersection over union with a kept box of its class exceeds 0.5 ([`select_strongest`]).
//!
//! The detector's `FractionDownsampling` is taken as true and `WH2HW` as false (the values of
//! every detector saved since MATLAB R2019b's update 1 (version 4), such as the fixture's).
//! Detections come back strongest first.

pub mod draw;

use crate::net::layer::{LayerKind, Network};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DetectError {
    #[error("'{variable}' is not a YOLO v2 detector network: {why}")]
    NotADetector { variable: String, why: String },
    #[error("the network output has shape {found:?}; the detector expects [{expected}]")]
    Output { expected: String, found: Vec<usize> },
}

/// MATLAB's default `OverlapThreshold` of `detect`.
pub const OVERLAP_THRESHOLD: f64 = 0.5;

/// One detection: the class index, its score and MATLAB's `[x y w h]` box (1-based pixels of the
/// original image).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: usize,
    pub score: f32,
    pub bbox: [f64; 4],
}

/// The detector's decoding parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoder {
    /// Anchor boxes, `[height, width]` in pixels of the network input.
    pub anchors: Vec<[f64; 2]>,
    pub classes: Vec<String>,
    /// The size images are resized to (`TrainingImageSize`), `[height, width]`.
    pub input_size: [usize; 2],
    /// Detections below this score are dropped.
    pub threshold: f32,
}

/// The anchors (`[h w]` rows) and class names of a YOLO v2 network: the detector's
/// (`Network::detector`) when the network came from one, else its YOLO v2 output layer's.
pub fn detector_meta(net: &Network) -> Option<(Vec<[f64; 2]>, Vec<String>)> {
    if let Some(d) = &net.detector
        && !d.anchor_boxes.is_empty()
    {
        return Some((d.anchor_boxes.clone(), d.class_names.clone()));
    }
    net.layers.iter().find_map(|l| match &l.kind {
        LayerKind::Yolov2Output {
            anchor_boxes,
            classes,
        } if !anchor_boxes.is_empty() => Some((anchor_boxes.clone(), classes.clone())),
        _ => None,
    })
}

/// The size detection resizes images to: the detector's `TrainingImageSize`, else the network's
/// input size.
pub fn training_size(net: &Network) -> Option<[usize; 2]> {
    if let Some(s) = net.detector.as_ref().and_then(|d| d.training_image_size) {
        return Some(s);
    }
    match net.input().map(|l| &l.kind) {
        Some(LayerKind::ImageInput { size, .. }) if size.h > 0 && size.w > 0 => {
            Some([size.h, size.w])
        }
        _ => None,
    }
}

impl Decoder {
    /// The decoder of a YOLO v2 network (it must have a YOLO v2 transform layer and anchors).
    pub fn for_network(net: &Network, threshold: f32) -> Result<Decoder, DetectError> {
        let not = |why: &str| DetectError::NotADetector {
            variable: net.variable.clone(),
            why: why.into(),
        };
        let transform = net.layers.iter().find_map(|l| match l.kind {
            LayerKind::Yolov2Transform { anchors } => Some(anchors),
            _ => None,
        });
        let Some(n) = transform else {
            return Err(not("it has no YOLO v2 transform layer"));
        };
        let (anchors, classes) =
            detector_meta(net).ok_or_else(|| not("no anchor boxes are stored"))?;
        if anchors.len() != n {
            return Err(not(&format!(
                "{} anchor boxes are stored for a transform layer of {n} anchors",
                anchors.len()
            )));
        }
        let input_size = training_size(net).ok_or_else(|| not("its input size is unknown"))?;
        Ok(Decoder {
            anchors,
            classes,
            input_size,
            threshold,
        })
    }

    /// The class name of detection class `i` (1-based `class N` when none is stored).
    pub fn class_name(&self, i: usize) -> String {
        self.classes
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {}", i + 1))
    }

    /// Detections of one image: `t` is the network output `[C, gh, gw]` (row-major) for it and
    /// `image_hw` the original image's `[height, width]`. Decoding, filtering and NMS.
    pub fn detect(
        &self,
        t: &[f32],
        grid: [usize; 3],
        image_hw: [usize; 2],
    ) -> Result<Vec<Detection>, DetectError> {
        Ok(select_strongest(
            self.decode(t, grid, image_hw)?,
            OVERLAP_THRESHOLD,
        ))
    }

    /// Steps 2 and 3 of the module documentation (everything before the suppression), in
    /// MATLAB's order (rows, then columns, then anchors).
    pub fn decode(
        &self,
        t: &[f32],
        grid: [usize; 3],
        image_hw: [usize; 2],
    ) -> Result<Vec<Detection>, DetectError> {
        let [c, gh, gw] = grid;
        let a = self.anchors.len();
        if a == 0 || c % a != 0 || c / a <= 5 || t.len() != c * gh * gw || gh == 0 || gw == 0 {
            return Err(DetectError::Output {
                expected: format!("{a} x (5 + K), H, W"),
                found: vec![c, gh, gw],
            });
        }
        let k = c / a;
        let [ph, pw] = [self.input_size[0] as f64, self.input_size[1] as f64];
        let (dy, dx) = (ph / gh as f64, pw / gw as f64);
        let at = |pred: usize, anchor: usize, r: usize, col: usize| {
            t[((pred * a + anchor) * gh + r) * gw + col]
        };
        let (h, w) = (image_hw[0] as f64, image_hw[1] as f64);
        let (sx, sy) = (w / pw, h / ph);
        let mut out = Vec::new();
        for r in 0..gh {
            for col in 0..gw {
                for (j, anchor) in self.anchors.iter().enumerate() {
                    let iou = at(0, j, r, col);
                    let mut label = 0;
                    let mut best = f32::NEG_INFINITY;
                    for cls in 0..k - 5 {
                        let p = at(5 + cls, j, r, col);
                        if p > best {
                            best = p;
                            label = cls;
                        }
                    }
                    let score = iou * best;
                    if score.is_nan() || score < self.threshold {
                        continue;
                    }
                    // In single precision, as MATLAB computes it from the single activations
                    // (anchors divided by the downsampling factor, then multiplied back).
                    let cx = (at(1, j, r, col) + col as f32) * dx as f32;
                    let cy = (at(2, j, r, col) + r as f32) * dy as f32;
                    let bw = at(3, j, r, col) * (anchor[1] / dx) as f32 * dx as f32;
                    let bh = at(4, j, r, col) * (anchor[0] / dy) as f32 * dy as f32;
                    let corners = [
                        f64::from(cx - bw / 2.0).max(1.0),
                        f64::from(cy - bh / 2.0).max(1.0),
                        f64::from(cx + bw / 2.0).min(pw),
                        f64::from(cy + bh / 2.0).min(ph),
                    ];
                    let bbox = scale_box(corners, sx, sy);
                    if bbox[3] >= 1.0 && bbox[2] >= 1.0 && bbox[3] <= h && bbox[2] <= w {
                        out.push(Detection {
                            class: label,
                            score,
                            bbox,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// MATLAB's `boxUtils.scaleX1X2Y1Y2` (pixel corners `[x1 y1 x2 y2]` scaled by `sx`, `sy` about
/// pixel edges, floored) followed by `x1y1x2y2ToXYWH` (`w = x2 - x1 + 1`).
pub fn scale_box(c: [f64; 4], sx: f64, sy: f64) -> [f64; 4] {
    let x1 = ((c[0] - 0.5) * sx + (1.0 - sx) / 2.0 + 0.5).floor();
    let y1 = ((c[1] - 0.5) * sy + (1.0 - sy) / 2.0 + 0.5).floor();
    let x2 = ((c[2] + 0.5) * sx + (1.0 - sx) / 2.0 - 0.5).floor();
    let y2 = ((c[3] + 0.5) * sy + (1.0 - sy) / 2.0 - 0.5).floor();
    [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0]
}

/// MATLAB's `bboxOverlapRatio(a, b, 'Union')` of two `[x y w h]` boxes: intersection over union,
/// with a box covering `[x, x + w) x [y, y + h)`.
pub fn overlap_ratio(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let ih = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// Greedy non-maximum suppression per class (`selectStrongestBboxMulticlass` with RatioType
/// 'Union'): strongest first (equal scores keep their order), a box is dropped when its overlap
/// with a kept box of the same class exceeds `overlap`.
pub fn select_strongest(mut dets: Vec<Detection>, overlap: f64) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in dets {
        if kept
            .iter()
            .all(|k| k.class != d.class || overlap_ratio(&k.bbox, &d.bbox) <= overlap)
        {
            kept.push(d);
        }
    }
    kept
}

/// MATLAB's `rescale` of a whole image to [0, 1]: `(v - min) / (max - min)`; a constant image
/// becomes zeros.
pub fn rescale(v: &mut [f32]) {
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = hi - lo;
    for x in v.iter_mut() {
        *x = if range > 0.0 { (*x - lo) / range } else { 0.0 };
    }
}

/// An image file as the detector's input: `[C, h, w]` values resized to `h x w` as MATLAB's
/// `detect` does (`imresize`: bicubic, antialiased when shrinking, rounded to `uint8` for 8-bit
/// files) and rescaled to [0, 1], and the original `[height, width]`.
pub fn load_detector_image(
    path: &std::path::Path,
    size: [usize; 2],
    channels: usize,
) -> Result<(Vec<f32>, [usize; 2]), crate::data::DataError> {
    let img = crate::data::read_image(path, channels)?;
    let mut v = crate::data::resize(
        &img.data,
        channels,
        [img.h, img.w],
        size,
        crate::data::ResizeMethod::Matlab,
        !img.sixteen_bit,
    );
    rescale(&mut v);
    Ok((v, [img.h, img.w]))
}
