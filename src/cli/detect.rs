//! `matcnn detect`: YOLO v2 object detection on image files.

use super::{BackendArg, ForceArg, JsonArg, NetArgs};
use anyhow::{Context, Result, bail};
use burn::prelude::{Tensor, TensorData};
use clap::Args;
use matcnn::data;
use matcnn::detect::{self, Decoder, Detection};
use matcnn::model::device_for;
use serde_json::json;
use std::path::PathBuf;

/// Detect objects with a YOLO v2 detector (a yolov2ObjectDetector's network) in image files (PNG,
/// JPEG, BMP, TIFF) or every image in a directory, as MATLAB's `detect` does: boxes `[x y w h]` in
/// the image's pixels (1-based), score = objectness x class probability, non-maximum suppression
/// per class (overlap ratio 'Union' > 0.5).
#[derive(Args)]
#[command(mut_arg("json", |a| a.help("Print JSON {\"results\": [{\"image\", \"detections\": [{\"class\", \"score\", \"box\"}]}]}")))]
pub struct DetectArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Images or directories of images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Detections with a lower score are dropped (MATLAB's 'Threshold').
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Write each image with its detections drawn as DIR/<name>_detections.png.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    #[command(flatten)]
    force: ForceArg,
    #[command(flatten)]
    device: BackendArg,
    #[command(flatten)]
    out: JsonArg,
}

pub fn run(args: DetectArgs) -> Result<()> {
    let DetectArgs {
        net: net_args,
        images,
        threshold,
        output,
        force: ForceArg { force },
        device: BackendArg { backend },
        out: JsonArg { json },
    } = args;
    if !(0.0..=1.0).contains(&threshold) {
        bail!("--threshold must be between 0 and 1 (got {threshold})");
    }
    let mut loaded = net_args.load()?;
    let decoder = Decoder::for_network(&loaded.net, threshold)
        .with_context(|| format!("{} cannot detect objects", loaded.label))?;
    let ([_, _, c], spatial) = super::input_shape(&loaded.net)?;
    if !spatial {
        bail!("the network takes feature vectors, not images");
    }
    let files = data::expand_inputs(&images)?;
    if files.is_empty() {
        bail!("no images found in the inputs given");
    }
    // Every image is read before anything is written, so a bad input leaves no outputs behind.
    let mut inputs = Vec::with_capacity(files.len());
    for f in &files {
        let (x, hw) = detect::load_detector_image(f, decoder.input_size, c)
            .with_context(|| format!("reading the image {}", f.display()))?;
        inputs.push((x, hw));
    }
    let device = device_for(backend)?;
    let model = loaded.build_for_inference(&device)?;
    let [h, w] = decoder.input_size;
    let mut results: Vec<(PathBuf, Vec<Detection>)> = Vec::new();
    for (f, (x, hw)) in files.iter().zip(inputs) {
        let t = Tensor::<4>::from_data(TensorData::new(x, [1, c, h, w]), &device);
        let y = model.forward(t);
        let [_, oc, gh, gw] = y.dims();
        let v = y
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the network output: {e:?}"))?;
        let dets = decoder
            .detect(&v, [oc, gh, gw], hw)
            .with_context(|| format!("decoding the detections of {}", f.display()))?;
        results.push((f.clone(), dets));
    }
    if let Some(dir) = &output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (f, dets) in &results {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("image")
                .to_string();
            let png = detect::draw::annotated_png(f, dets, |i| decoder.class_name(i))?;
            let target = dir.join(format!("{stem}_detections.png"));
            data::write_atomic(&target, &png, &files, force)
                .with_context(|| format!("writing {}", target.display()))?;
        }
    }
    if json {
        let v: Vec<_> = results
            .iter()
            .map(|(f, dets)| {
                json!({
                    "image": f.display().to_string(),
                    "detections": dets.iter().map(|d| json!({
                        "class": decoder.class_name(d.class),
                        "score": d.score,
                        "box": d.bbox,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": v }))?
        );
    } else {
        for (f, dets) in &results {
            if dets.is_empty() {
                println!("{}\t(no detections)", f.display());
            }
            for d in dets {
                let b = d.bbox;
                println!(
                    "{}\t{}\t{:.4}\t[{} {} {} {}]",
                    f.display(),
                    decoder.class_name(d.class),
                    d.score,
                    b[0],
                    b[1],
                    b[2],
                    b[3]
                );
            }
        }
    }
    Ok(())
}
