//! What `infer` writes and prints for segmentation and image-to-image networks.

use super::Task;
use anyhow::{Context, Result, bail};
use image::{ImageBuffer, Luma, Rgb};
use matcnn::data::{self, Image, ResizeMethod};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The files `infer --output DIR` writes for `input`.
pub fn names(input: &Path, task: Task) -> Vec<String> {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image");
    match task {
        Task::Classification => vec![],
        Task::Segmentation => vec![format!("{stem}_labels.png"), format!("{stem}_overlay.png")],
        Task::Image => vec![format!("{stem}_output.png"), format!("{stem}_output.npy")],
    }
}

/// The colour of class `k` (0-based) in overlays: PASCAL VOC's colour map for label `k + 1`
/// (so that the first class is not black).
pub fn class_colour(k: usize) -> [u8; 3] {
    let mut c = [0u8; 3];
    let mut label = k + 1;
    let mut shift = 7;
    while label > 0 && shift >= 0 {
        for (ch, v) in c.iter_mut().enumerate() {
            *v |= (((label >> ch) & 1) as u8) << shift;
        }
        label >>= 3;
        shift -= 1;
    }
    c
}

fn png(img: image::DynamicImage) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(bytes.into_inner())
}

/// `[C, H, W]` planes (C = 1 or 3) on the scale `0..range` → a PNG of 8 or 16 bits.
pub fn planes_png(
    p: &[f32],
    c: usize,
    h: usize,
    w: usize,
    range: f32,
    sixteen: bool,
) -> Result<Vec<u8>> {
    let max = if sixteen { 65535.0 } else { 255.0 };
    let q = |v: f32| (v / range * max).round().clamp(0.0, max);
    let at = |ch: usize, i: usize| q(p[ch * h * w + i]);
    let (w32, h32) = (w as u32, h as u32);
    let img = match (c, sixteen) {
        (1, false) => image::DynamicImage::ImageLuma8(ImageBuffer::from_fn(w32, h32, |x, y| {
            Luma([at(0, y as usize * w + x as usize) as u8])
        })),
        (1, true) => image::DynamicImage::ImageLuma16(ImageBuffer::from_fn(w32, h32, |x, y| {
            Luma([at(0, y as usize * w + x as usize) as u16])
        })),
        (3, false) => image::DynamicImage::ImageRgb8(ImageBuffer::from_fn(w32, h32, |x, y| {
            let i = y as usize * w + x as usize;
            Rgb([at(0, i) as u8, at(1, i) as u8, at(2, i) as u8])
        })),
        (3, true) => image::DynamicImage::ImageRgb16(ImageBuffer::from_fn(w32, h32, |x, y| {
            let i = y as usize * w + x as usize;
            Rgb([at(0, i) as u16, at(1, i) as u16, at(2, i) as u16])
        })),
        _ => bail!("{c} channels cannot be written as a PNG"),
    };
    png(img)
}

/// Handles one image's output `o` (row-major `[K, H, W]`): computes what the task gives,
/// writes its files into `dir` (if given) and returns the JSON result.
#[allow(clippy::too_many_arguments)]
pub fn write_result(
    file: &Path,
    img: &Image,
    o: &[f32],
    [k, oh, ow]: [usize; 3],
    task: Task,
    classes: &[String],
    range: f32,
    residual: bool,
    dir: Option<&Path>,
    inputs: &[PathBuf],
    force: bool,
) -> Result<Value> {
    let names = names(file, task);
    let target = |i: usize| dir.map(|d| d.join(&names[i]));
    let write = |path: &Option<PathBuf>, bytes: &[u8]| -> Result<Option<String>> {
        match path {
            Some(p) => {
                data::write_atomic(p, bytes, inputs, force)?;
                Ok(Some(p.display().to_string()))
            }
            None => Ok(None),
        }
    };
    let n = oh * ow;
    match task {
        Task::Classification => bail!("classification results are not written as images"),
        Task::Segmentation => {
            let labels: Vec<usize> = (0..n)
                .map(|i| {
                    (0..k)
                        .max_by(|&a, &b| o[a * n + i].total_cmp(&o[b * n + i]).then(b.cmp(&a)))
                        .unwrap_or(0)
                })
                .collect();
            let mut counts = vec![0usize; k];
            for &l in &labels {
                counts[l] += 1;
            }
            let name = |i: usize| {
                classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class {}", i + 1))
            };
            let (mut lpath, mut opath) = (None, None);
            if dir.is_some() {
                // Label codes 1..K, as MATLAB's uint8(categorical) numbers the classes.
                let (w32, h32) = (ow as u32, oh as u32);
                let lab = if k <= 255 {
                    image::DynamicImage::ImageLuma8(ImageBuffer::from_fn(w32, h32, |x, y| {
                        Luma([(labels[y as usize * ow + x as usize] + 1) as u8])
                    }))
                } else {
                    image::DynamicImage::ImageLuma16(ImageBuffer::from_fn(w32, h32, |x, y| {
                        Luma([(labels[y as usize * ow + x as usize] + 1) as u16])
                    }))
                };
                lpath = write(&target(0), &png(lab)?)?;
                // The image at the output's size, on the 0..255 scale, half and half with the
                // class colours.
                let base = data::resize(
                    &img.data,
                    img.channels,
                    [img.h, img.w],
                    [oh, ow],
                    ResizeMethod::Matlab,
                    false,
                );
                let pix = |ch: usize, i: usize| {
                    let ch = if img.channels == 3 { ch } else { 0 };
                    base[ch * n + i] / range * 255.0
                };
                let ov = image::DynamicImage::ImageRgb8(ImageBuffer::from_fn(
                    ow as u32,
                    oh as u32,
                    |x, y| {
                        let i = y as usize * ow + x as usize;
                        let col = class_colour(labels[i]);
                        let mix = |ch: usize| {
                            (0.5 * pix(ch, i) + 0.5 * col[ch] as f32)
                                .round()
                                .clamp(0.0, 255.0) as u8
                        };
                        Rgb([mix(0), mix(1), mix(2)])
                    },
                ));
                opath = write(&target(1), &png(ov)?)?;
            }
            Ok(json!({
                "image": file.display().to_string(),
                "task": "segmentation",
                "size": [oh, ow],
                "classes": (0..k).map(|i| json!({"class": name(i), "pixels": counts[i]})).collect::<Vec<_>>(),
                "labels": lpath,
                "overlay": opath,
            }))
        }
        Task::Image => {
            let result: Vec<f32> = if residual {
                if k != img.channels || (oh, ow) != (img.h, img.w) {
                    bail!(
                        "--residual: the output ({ow}x{oh}x{k}) does not have the input's size ({}x{}x{})",
                        img.w,
                        img.h,
                        img.channels
                    );
                }
                img.data.iter().zip(o).map(|(x, r)| x - r).collect()
            } else {
                o.to_vec()
            };
            let (mut ppath, mut npath) = (None, None);
            if dir.is_some() {
                if k == 1 || k == 3 {
                    ppath = write(
                        &target(0),
                        &planes_png(&result, k, oh, ow, range, img.sixteen_bit)?,
                    )?;
                }
                npath = write(&target(1), &data::npy_bytes(&result, &[k, oh, ow]))?;
            }
            let (lo, hi) = result
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            Ok(json!({
                "image": file.display().to_string(),
                "task": "image",
                "size": [oh, ow],
                "channels": k,
                "residual": residual,
                "range": range,
                "min": lo,
                "max": hi,
                "png": ppath,
                "npy": npath,
            }))
        }
    }
}

/// One line of text for a result of [`write_result`].
pub fn text(r: &Value) -> String {
    let image = r["image"].as_str().unwrap_or("");
    let size = format!("{}x{}", r["size"][0], r["size"][1]);
    let files: Vec<&str> = ["labels", "overlay", "png", "npy"]
        .iter()
        .filter_map(|k| r[*k].as_str())
        .collect();
    let files = if files.is_empty() {
        "(--output DIR writes the images)".to_string()
    } else {
        format!("-> {}", files.join(", "))
    };
    if r["task"] == "segmentation" {
        let mut cls: Vec<(String, u64)> = r["classes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["class"].as_str().unwrap_or("").to_string(),
                            c["pixels"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        cls.sort_by_key(|c| std::cmp::Reverse(c.1));
        let total: u64 = cls.iter().map(|c| c.1).sum::<u64>().max(1);
        let cols: Vec<String> = cls
            .iter()
            .filter(|c| c.1 > 0)
            .map(|(c, p)| format!("{c} {p} px ({:.1}%)", 100.0 * *p as f64 / total as f64))
            .collect();
        format!("{image}\t{size}\t{}\t{files}", cols.join("\t"))
    } else {
        format!(
            "{image}\t{size}x{}\tvalues {:.4}..{:.4}\t{files}",
            r["channels"],
            r["min"].as_f64().unwrap_or(f64::NAN),
            r["max"].as_f64().unwrap_or(f64::NAN)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_colours() {
        // PASCAL VOC: label 1 (128, 0, 0), 2 (0, 128, 0), 3 (128, 128, 0), 15 (192, 128, 128).
        assert_eq!(class_colour(0), [128, 0, 0]);
        assert_eq!(class_colour(1), [0, 128, 0]);
        assert_eq!(class_colour(2), [128, 128, 0]);
        assert_eq!(class_colour(14), [192, 128, 128]);
    }
}
