//! `matcnn infer`: classify image files.

use super::{BackendArg, JsonArg, NetArgs, input_shape, progress_bar};
use anyhow::{Result, bail};
use clap::Args;
use matcnn::data;
use matcnn::model::device_for;
use matcnn::net::LayerKind;
use serde_json::json;
use std::path::PathBuf;

/// Classify image files (PNG, JPEG, BMP, TIFF) or every image in a directory.
#[derive(Args)]
#[command(mut_arg("json", |a| a.help("Print JSON instead of a table")))]
pub struct InferArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Images or directories of images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[command(flatten)]
    device: BackendArg,
    #[command(flatten)]
    out: JsonArg,
}

/// Softmax over each row (for networks whose output is not already probabilities).
fn softmax_rows(v: &mut [f32], k: usize) {
    for row in v.chunks_mut(k) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter_mut().for_each(|x| *x = (*x - m).exp() / s);
    }
}

pub fn run(args: InferArgs) -> Result<()> {
    let InferArgs {
        net: net_args,
        images,
        top,
        batch_size,
        device: BackendArg { backend },
        out: JsonArg { json },
    } = args;
    let images = images.as_slice();
    let mut loaded = net_args.load()?;
    let net = &loaded.net;
    let ([h, w, c], spatial) = input_shape(net)?;
    if !spatial {
        bail!("the network takes feature vectors, not images: use `matcnn predict`");
    }
    let files = data::expand_inputs(images)?;
    if files.is_empty() {
        bail!(
            "no images found in {}",
            images
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let device = device_for(backend)?;
    let model = loaded.build_for_inference(&device)?;
    let net = &loaded.net;
    let has_softmax = net
        .layers
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Softmax));
    let pb = progress_bar(files.len(), "images");
    let mut results = Vec::new();
    for chunk in files.chunks(batch_size.max(1)) {
        let mut buf = Vec::with_capacity(chunk.len() * c * h * w);
        for f in chunk {
            buf.extend(data::load_image(f, h, w, c)?);
        }
        let (mut out, k) =
            model.predict(&buf, [chunk.len(), c, h, w], chunk.len(), &device, |_| {});
        if !has_softmax {
            softmax_rows(&mut out, k);
        }
        for (f, probs) in chunk.iter().zip(out.chunks(k)) {
            let mut idx: Vec<usize> = (0..k).collect();
            idx.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
            let best: Vec<(String, f32)> = idx
                .iter()
                .take(top.max(1))
                .map(|&i| {
                    (
                        net.classes
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("class {}", i + 1)),
                        probs[i],
                    )
                })
                .collect();
            results.push((f.clone(), best));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if json {
        let v: Vec<_> = results
            .iter()
            .map(|(f, best)| {
                json!({
                    "image": f.display().to_string(),
                    "top": best.iter().map(|(c, p)| json!({"class": c, "probability": p})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": v }))?
        );
    } else {
        for (f, best) in &results {
            let cols: Vec<String> = best
                .iter()
                .map(|(c, p)| format!("{c} {:.2}%", p * 100.0))
                .collect();
            println!("{}\t{}", f.display(), cols.join("\t"));
        }
    }
    Ok(())
}
