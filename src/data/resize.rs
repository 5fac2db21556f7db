//! Image resizing as MATLAB's `imresize` does it by default, and plain bilinear resizing.
//!
//! MATLAB's `imresize(A, [rows cols])` (method 'bicubic', 'Antialiasing' true) resizes one
//! dimension after the other, the one with the smaller scale factor first. Along one dimension of
//! length `n` resized to `m` (scale `s = m / n`), output pixel `x` (1-based) sits at input
//! coordinate `u = x / s + (1 - 1 / s) / 2`. Its weights are Keys' cubic kernel (`a = -0.5`,
//! width 4) at `u - k` for the input pixels `k` around `u`; when shrinking, the kernel is widened
//! by `1 / s` (`h(x) = s * cubic(s * x)`, width `4 / s`), which is the antialiasing. The weights
//! are normalized to sum to 1, and pixels outside the image are mirrored (`[1..n, n..1]`
//! repeating: symmetric edge handling). For `uint8` images each pass's result is rounded (half
//! away from zero) and saturated to 0..255, since MATLAB's pass returns the input's class.

use image::{ImageBuffer, Luma, imageops::FilterType};

/// How `infer` (and `detect`) resize an image to the network's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeMethod {
    /// MATLAB's `imresize` default: bicubic (Keys, a = -0.5), antialiased when shrinking.
    #[default]
    Matlab,
    /// Bilinear interpolation (the `image` crate's triangle filter), matcnn's former default.
    Bilinear,
}

/// Keys' cubic convolution kernel with `a = -0.5` (MATLAB's `cubic`).
pub fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let ax2 = ax * ax;
    let ax3 = ax2 * ax;
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// The weights of one output pixel: `(input index, weight)` pairs, 0-based indices.
pub type Contributions = Vec<(usize, f64)>;

/// MATLAB's `contributions(in_length, out_length, scale, @cubic, 4, true)`: for every output
/// pixel of a dimension resized from `input` to `output`, the input pixels it reads and their
/// normalized weights (mirrored indices merged, zero weights dropped).
pub fn imresize_weights(input: usize, output: usize) -> Vec<Contributions> {
    if input == 0 || output == 0 {
        return vec![Vec::new(); output];
    }
    let scale = output as f64 / input as f64;
    let (kernel_scale, width) = if scale < 1.0 {
        (scale, 4.0 / scale)
    } else {
        (1.0, 4.0)
    };
    let h = |x: f64| kernel_scale * cubic(kernel_scale * x);
    let taps = width.ceil() as i64 + 2;
    let period = 2 * input as i64;
    (1..=output)
        .map(|x| {
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - width / 2.0).floor() as i64;
            let mut w: Vec<(usize, f64)> = Vec::with_capacity(taps as usize);
            let mut total = 0.0;
            for k in left..left + taps {
                let v = h(u - k as f64);
                total += v;
                // aux = [1:n, n:-1:1], index = aux(mod(k - 1, 2n) + 1), 0-based here.
                let m = (k - 1).rem_euclid(period);
                let j = if m < input as i64 { m } else { period - 1 - m } as usize;
                match w.iter_mut().find(|(i, _)| *i == j) {
                    Some(e) => e.1 += v,
                    None => w.push((j, v)),
                }
            }
            w.retain(|&(_, v)| v != 0.0);
            for e in &mut w {
                e.1 /= total;
            }
            w
        })
        .collect()
}

/// Resizes `[C, H, W]` row-major planes from `h x w` to `out_h x out_w`. `uint8` rounds and
/// saturates each pass to 0..255 as MATLAB does for `uint8` images (values on the 0..255 scale).
pub fn resize(
    planes: &[f32],
    channels: usize,
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    method: ResizeMethod,
    uint8: bool,
) -> Vec<f32> {
    if (h, w) == (out_h, out_w) {
        return planes.to_vec();
    }
    match method {
        ResizeMethod::Matlab => imresize(planes, channels, [h, w], [out_h, out_w], uint8),
        ResizeMethod::Bilinear => planes
            .chunks_exact(h * w)
            .take(channels)
            .flat_map(|p| {
                let img: ImageBuffer<Luma<f32>, Vec<f32>> =
                    ImageBuffer::from_raw(w as u32, h as u32, p.to_vec())
                        .unwrap_or_else(|| ImageBuffer::new(w as u32, h as u32));
                image::imageops::resize(&img, out_w as u32, out_h as u32, FilterType::Triangle)
                    .into_raw()
            })
            .collect(),
    }
}

/// MATLAB's `imresize(A, [out_h out_w])` (bicubic, antialiased) on `[C, H, W]` planes.
pub fn imresize(
    planes: &[f32],
    channels: usize,
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    uint8: bool,
) -> Vec<f32> {
    let quant = |v: f64| -> f32 {
        if uint8 {
            v.round().clamp(0.0, 255.0) as f32
        } else {
            v as f32
        }
    };
    let rows = imresize_weights(h, out_h);
    let cols = imresize_weights(w, out_w);
    let along_rows = |p: &[f32], ww: usize| -> Vec<f32> {
        let mut o = vec![0.0; out_h * ww];
        for (y, c) in rows.iter().enumerate() {
            for x in 0..ww {
                o[y * ww + x] = quant(c.iter().map(|&(j, v)| v * p[j * ww + x] as f64).sum());
            }
        }
        o
    };
    let along_cols = |p: &[f32], hh: usize| -> Vec<f32> {
        let mut o = vec![0.0; hh * out_w];
        for y in 0..hh {
            let row = &p[y * w..(y + 1) * w];
            for (x, c) in cols.iter().enumerate() {
                o[y * out_w + x] = quant(c.iter().map(|&(j, v)| v * row[j] as f64).sum());
            }
        }
        o
    };
    let (sh, sw) = (out_h as f64 / h as f64, out_w as f64 / w as f64);
    planes
        .chunks_exact(h * w)
        .take(channels)
        .flat_map(|p| {
            // MATLAB's order: the dimension with the smaller scale first (rows on a tie).
            if sh <= sw {
                let t = if out_h == h {
                    p.to_vec()
                } else {
                    along_rows(p, w)
                };
                if out_w == w { t } else { along_cols(&t, out_h) }
            } else {
                let t = if out_w == w {
                    p.to_vec()
                } else {
                    along_cols(p, h)
                };
                if out_h == h { t } else { along_rows(&t, out_w) }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_sizes_match() {
        let w = imresize_weights(5, 5);
        for (i, c) in w.iter().enumerate() {
            assert_eq!(c, &vec![(i, 1.0)]);
        }
    }

    #[test]
    fn weights_sum_to_one() {
        for (n, m) in [(7, 3), (3, 7), (10, 4), (4, 10), (1, 5), (5, 1)] {
            for c in imresize_weights(n, m) {
                let s: f64 = c.iter().map(|e| e.1).sum();
                assert!((s - 1.0).abs() < 1e-12, "{n}->{m}: {s}");
                assert!(c.iter().all(|&(j, _)| j < n));
            }
        }
    }
}
