//! The training curve as a PNG: loss (left) and accuracy (right) per epoch, training in blue and
//! validation in orange, drawn with the `image` crate (no plotting dependency for two lines).

use super::EpochLog;
use image::{Rgb, RgbImage};
use std::path::Path;

const W: u32 = 800;
const H: u32 = 360;
const PAD: u32 = 30;
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);
const GRID: Rgb<u8> = Rgb([220, 220, 220]);
const AXIS: Rgb<u8> = Rgb([60, 60, 60]);

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x as i64 + dx, y as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

/// A curve's (epoch, value) points and its colour.
type Series = (Vec<(f64, f64)>, Rgb<u8>);

/// One panel: series of (epoch, value) scaled into the box at `x0`.
fn panel(img: &mut RgbImage, x0: u32, series: &[Series], lo: f64, hi: f64, epochs: f64) {
    let (bw, bh) = ((W / 2 - 2 * PAD) as f64, (H - 2 * PAD) as f64);
    let (bx, by) = (x0 as f64 + PAD as f64, PAD as f64);
    for k in 0..=4 {
        let y = by + bh * k as f64 / 4.0;
        line(img, (bx, y), (bx + bw, y), GRID);
    }
    line(img, (bx, by), (bx, by + bh), AXIS);
    line(img, (bx, by + bh), (bx + bw, by + bh), AXIS);
    let span = (hi - lo).max(1e-12);
    let to = |(e, v): (f64, f64)| {
        (
            bx + bw * (e - 1.0) / (epochs - 1.0).max(1.0),
            by + bh * (1.0 - (v - lo) / span),
        )
    };
    for (pts, c) in series {
        for w in pts.windows(2) {
            line(img, to(w[0]), to(w[1]), *c);
        }
        for p in pts {
            let (x, y) = to(*p);
            line(img, (x - 2.0, y), (x + 2.0, y), *c);
        }
    }
}

/// Draws the curve for `history` into `path`.
pub fn training_curve(history: &[EpochLog], path: &Path) -> std::io::Result<()> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let epochs = history.iter().map(|l| l.epoch as f64).fold(1.0, f64::max);
    let pts = |f: &dyn Fn(&EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|l| f(l).map(|v| (l.epoch as f64, v)))
            .collect()
    };
    let tl = pts(&|l| Some(l.train_loss));
    let vl = pts(&|l| l.val_loss);
    let hi = tl.iter().chain(&vl).map(|p| p.1).fold(0.0, f64::max);
    panel(&mut img, 0, &[(tl, BLUE), (vl, ORANGE)], 0.0, hi, epochs);
    let ta = pts(&|l| Some(l.train_accuracy));
    let va = pts(&|l| l.val_accuracy);
    panel(
        &mut img,
        W / 2,
        &[(ta, BLUE), (va, ORANGE)],
        0.0,
        1.0,
        epochs,
    );
    img.save(path).map_err(std::io::Error::other)
}
