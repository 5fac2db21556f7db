//! `matcnn infer`: run image files through the network, for the task its output layer names:
//! classification (top classes), semantic segmentation (label and overlay PNGs, pixel counts) or
//! image-to-image networks such as denoisers (the output image as PNG and `.npy`).

use super::{BackendArg, ForceArg, JsonArg, NetArgs, input_shape, progress_bar};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use matcnn::data::{self, Image, ResizeMethod};
use matcnn::model::{MatNet, device_for};
use matcnn::net::{LayerKind, Network, SourceKind};
use serde_json::json;
use std::path::PathBuf;

mod out;

/// Run images (PNG, JPEG, BMP, TIFF, or every image in a directory) through the network:
/// classification prints the top classes; segmentation networks give a label PNG, a colour
/// overlay PNG and pixel counts per class; image-to-image networks (denoisers, image
/// regression) give the output image as PNG and `.npy` (with --output DIR).
#[derive(Args)]
#[command(mut_arg("json", |a| a.help("Print JSON instead of a table")))]
pub struct InferArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Images or directories of images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image (classification networks only; default 3).
    #[arg(long)]
    top: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// How an image is resized to the network's input size: matlab (MATLAB's `imresize`:
    /// bicubic, antialiased when shrinking) or bilinear. Networks that take any size run on
    /// segmentation and image-to-image tasks at the image's own size.
    #[arg(long, value_enum, default_value_t = ResizeArg::Matlab)]
    resize: ResizeArg,
    /// Folder for the output files (created if missing): IMAGE_labels.png and
    /// IMAGE_overlay.png for segmentation, IMAGE_output.png and IMAGE_output.npy for
    /// image-to-image networks. Never written over an input; existing files need --force.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Image-to-image networks: whether the network outputs the residual (the noise), so that
    /// the result is input - output. auto: yes for a MatConvNet network whose output has the
    /// input's size and channels and that does not add its input back itself (DnCNN's
    /// SimpleNN), no otherwise.
    #[arg(long, value_enum, default_value_t = Residual::Auto)]
    residual: Residual,
    /// The value of white the network expects: 255 (MATLAB's uint8 scale) or 1 (`im2single`).
    /// Default: 1 for MatConvNet image-to-image networks without input normalization (as
    /// MatConvNet's restoration demos feed them), 255 otherwise.
    #[arg(long)]
    range: Option<f32>,
    #[command(flatten)]
    device: BackendArg,
    #[command(flatten)]
    out: JsonArg,
    #[command(flatten)]
    overwrite: ForceArg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResizeArg {
    Matlab,
    Bilinear,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Residual {
    Auto,
    Yes,
    No,
}

/// What the network's output is, from its output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// One score vector per image.
    Classification,
    /// A classification output over pixels (`pixelClassificationLayer`,
    /// `dicePixelClassificationLayer`): a class per pixel.
    Segmentation,
    /// An image out (regression output over pixels, denoisers, any network ending in a
    /// spatial output without a classification layer).
    Image,
}

/// The task of a network, from its output layer and the output's shape (a spatial output of
/// unknown size counts as spatial).
pub fn task(net: &Network) -> Task {
    let Some(out) = net
        .outputs
        .first()
        .and_then(|&i| net.layers.get(i))
        .or(net.layers.last())
    else {
        return Task::Classification;
    };
    let spatial = out
        .output
        .is_some_and(|s| s.spatial && (s.h != 1 || s.w != 1));
    match (&out.kind, spatial) {
        (_, false) => Task::Classification,
        (LayerKind::ClassificationOutput { .. }, true) => Task::Segmentation,
        (LayerKind::Softmax, true) => Task::Segmentation,
        (_, true) => Task::Image,
    }
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
        resize,
        output,
        residual,
        range,
        device: BackendArg { backend },
        out: JsonArg { json },
        overwrite: ForceArg { force },
    } = args;
    let method = match resize {
        ResizeArg::Matlab => ResizeMethod::Matlab,
        ResizeArg::Bilinear => ResizeMethod::Bilinear,
    };
    let images = images.as_slice();
    let mut loaded = net_args.load()?;
    let net = &loaded.net;
    let ([dh, dw, c], spatial) = input_shape(net)?;
    if !spatial {
        bail!("the network takes feature vectors, not images: use `matcnn predict`");
    }
    let task = task(net);
    if task != Task::Classification && top.is_some() {
        let what = if task == Task::Segmentation {
            "a class per pixel (semantic segmentation)"
        } else {
            "an image"
        };
        bail!(
            "--top applies to classification, but this network outputs {what}: its results are written with --output DIR (and pixel counts per class with --json)"
        );
    }
    if let Some(r) = range
        && !(r == 1.0 || r == 255.0)
    {
        bail!("--range: expected 1 or 255, found {r}");
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
    if task == Task::Classification {
        if output.is_some() {
            bail!("--output: a classification network writes no files (use --json)");
        }
        let mut loaded = loaded;
        return classify(
            &mut loaded,
            &files,
            [dh, dw, c],
            top.unwrap_or(3),
            batch_size,
            method,
            backend,
            json,
        );
    }
    let open = net.open_size();
    let range = range.unwrap_or_else(|| default_range(net, task));
    let residual = match residual {
        Residual::Yes => true,
        Residual::No => false,
        Residual::Auto => task == Task::Image && residual_form(net),
    };
    let mut inputs: Vec<PathBuf> = net_args.model.iter().cloned().collect();
    inputs.extend(files.iter().cloned());
    if let Some(dir) = &output {
        if files
            .iter()
            .any(|f| f.canonicalize().ok() == dir.canonicalize().ok())
        {
            bail!("--output {}: it is one of the inputs", dir.display());
        }
        let targets: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| out::names(f, task).into_iter().map(|n| dir.join(n)))
            .collect();
        if !force && let Some(t) = targets.iter().find(|t| t.exists()) {
            bail!("{} exists: pass --force to replace it", t.display());
        }
        for t in &targets {
            if inputs.iter().any(|i| {
                i.canonicalize().ok().is_some() && i.canonicalize().ok() == t.canonicalize().ok()
            }) {
                bail!("refusing to write {}: it is one of the inputs", t.display());
            }
        }
    }
    // Read every image first: a bad one stops the run before anything is written.
    let mut imgs = Vec::with_capacity(files.len());
    for f in &files {
        let img = data::read_image(f, c)?;
        let size = if open || dh == 0 || dw == 0 {
            [img.h, img.w]
        } else {
            [dh, dw]
        };
        let planes = data::resize(&img.data, c, [img.h, img.w], size, method, !img.sixteen_bit);
        let scaled: Vec<f32> = planes.iter().map(|v| v * range / 255.0).collect();
        imgs.push((
            f.clone(),
            Image {
                data: scaled,
                channels: c,
                h: size[0],
                w: size[1],
                sixteen_bit: img.sixteen_bit,
            },
        ));
    }
    if !json {
        eprintln!(
            "task: {}; input range 0..{range}{}",
            match task {
                Task::Segmentation => "semantic segmentation",
                _ => "image to image",
            },
            if task == Task::Image {
                if residual {
                    "; the network outputs the residual (noise): writing input - output (--residual no to change)"
                } else {
                    "; writing the network's output (--residual yes if it outputs the noise)"
                }
            } else {
                ""
            }
        );
    }
    if let Some(dir) = &output {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --output {}", dir.display()))?;
    }
    let device = device_for(backend)?;
    let pb = progress_bar(imgs.len(), "images");
    let mut results = Vec::new();
    let mut model: Option<(MatNet, [usize; 2])> = None;
    let mut order: Vec<usize> = (0..imgs.len()).collect();
    order.sort_by_key(|&i| (imgs[i].1.h, imgs[i].1.w, i));
    let mut out_json = vec![serde_json::Value::Null; imgs.len()];
    for group in order.chunk_by(|&a, &b| (imgs[a].1.h, imgs[a].1.w) == (imgs[b].1.h, imgs[b].1.w)) {
        let size = [imgs[group[0]].1.h, imgs[group[0]].1.w];
        if model.as_ref().is_none_or(|(_, s)| *s != size) {
            if model.is_some() {
                loaded = net_args.load()?;
            }
            super::predict::set_input_size(&mut loaded.net, size[0], size[1])?;
            model = Some((loaded.build_for_inference(&device)?, size));
        }
        let Some((m, _)) = &model else {
            bail!("no model built");
        };
        for chunk in group.chunks(batch_size.max(1)) {
            let mut buf = Vec::with_capacity(chunk.len() * c * size[0] * size[1]);
            for &i in chunk {
                buf.extend_from_slice(&imgs[i].1.data);
            }
            let (y, [k, oh, ow]) = m.predict_spatial(
                &buf,
                [chunk.len(), c, size[0], size[1]],
                chunk.len(),
                &device,
                |_| {},
            );
            for (j, &i) in chunk.iter().enumerate() {
                let (f, img) = &imgs[i];
                let o = &y[j * k * oh * ow..(j + 1) * k * oh * ow];
                let r = out::write_result(
                    f,
                    img,
                    o,
                    [k, oh, ow],
                    task,
                    &loaded.net.classes,
                    range,
                    residual,
                    output.as_deref(),
                    &inputs,
                    force,
                )?;
                out_json[i] = r;
            }
            pb.inc(chunk.len() as u64);
        }
    }
    pb.finish_and_clear();
    results.extend(out_json);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": results }))?
        );
    } else {
        for r in &results {
            println!("{}", out::text(r));
        }
    }
    Ok(())
}

/// The input range an image-to-image network expects by default: 1 for MatConvNet networks
/// without input normalization (their restoration models are trained on `im2single` images),
/// 255 otherwise (MATLAB's networks take `uint8`-scale values).
fn default_range(net: &Network, task: Task) -> f32 {
    let matconvnet = matches!(
        net.source,
        SourceKind::MatConvNetSimpleNN | SourceKind::MatConvNetDagNN
    );
    let normalized = net.input().is_some_and(|l| {
        matches!(&l.kind, LayerKind::ImageInput { normalization, .. } if normalization.name() != "none")
    });
    if task == Task::Image && matconvnet && !normalized {
        1.0
    } else {
        255.0
    }
}

/// Whether an image-to-image network outputs the residual: a MatConvNet network whose output
/// has the input's channels and whose input feeds only its first layer (a network that adds
/// its input back, as DnCNN's DagNN does with its final Sum, outputs the image itself).
pub fn residual_form(net: &Network) -> bool {
    let matconvnet = matches!(
        net.source,
        SourceKind::MatConvNetSimpleNN | SourceKind::MatConvNetDagNN
    );
    let Some(inp) = net
        .layers
        .iter()
        .position(|l| matches!(l.kind, LayerKind::ImageInput { .. }))
    else {
        return false;
    };
    let readers = net
        .layers
        .iter()
        .filter(|l| l.inputs.contains(&inp))
        .count();
    let in_c = match &net.layers[inp].kind {
        LayerKind::ImageInput { size, .. } => size.c,
        _ => 0,
    };
    let out_c = net
        .outputs
        .first()
        .and_then(|&i| net.layers.get(i))
        .or(net.layers.last())
        .and_then(|l| l.output)
        .map(|s| s.c);
    matconvnet && readers == 1 && out_c == Some(in_c)
}

/// Classification: each image resized to the network's input size, the top classes printed.
#[allow(clippy::too_many_arguments)]
fn classify(
    loaded: &mut matcnn::source::Loaded,
    files: &[PathBuf],
    [h, w, c]: [usize; 3],
    top: usize,
    batch_size: usize,
    method: ResizeMethod,
    backend: Option<matcnn::model::Backend>,
    json: bool,
) -> Result<()> {
    if h == 0 || w == 0 {
        bail!(
            "the network declares no input size and ends in a classification: use `matcnn predict` with arrays of the size it was trained on"
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
            buf.extend(data::load_image_with(f, h, w, c, method)?);
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
    print_classes(&results, json)
}

fn print_classes(results: &[(PathBuf, Vec<(String, f32)>)], json: bool) -> Result<()> {
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
        for (f, best) in results {
            let cols: Vec<String> = best
                .iter()
                .map(|(c, p)| format!("{c} {:.2}%", p * 100.0))
                .collect();
            println!("{}\t{}", f.display(), cols.join("\t"));
        }
    }
    Ok(())
}
