//! The `matcnn` command line: one function per subcommand.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use matcnn::data;
use matcnn::model::{Backend, device_for};
use matcnn::net::{LayerKind, Network};
use matcnn::source::{load, load_network};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "matcnn",
    version,
    about = "MATLAB-trained networks made native: read, inspect, run and export .mat networks without MATLAB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which network to use.
#[derive(Args)]
struct NetArgs {
    /// The network: a .mat file (default: the built-in MNIST demo network).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The variable holding the network, when the file has several.
    #[arg(long)]
    var: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Onnx,
    Pytorch,
    Burn,
    Rust,
}

#[derive(Subcommand)]
enum Command {
    /// Print a .mat file's value tree: variables, classes, sizes, objects and their properties.
    Dump {
        /// The .mat file (v5/v7 or v7.3).
        file: PathBuf,
        /// Show only this variable.
        #[arg(long)]
        var: Option<String>,
        /// How many levels of structs, cells and objects to expand.
        #[arg(long, default_value_t = 4)]
        depth: usize,
        /// Print JSON (schema in the README) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Describe a network layer by layer (like MATLAB's analyzeNetwork).
    Inspect {
        /// The .mat file (same as --model).
        file: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
        /// Print JSON (schema in the README).
        #[arg(long)]
        json: bool,
    },
    /// Run a stored array through the network and write the outputs.
    Predict {
        #[command(flatten)]
        net: NetArgs,
        /// The input: FILE.mat:VAR (H x W x C x N images or C x N features, as MATLAB stores
        /// them) or FILE.npy ([N, C, H, W] images or [N, C] features).
        #[arg(long)]
        input: String,
        /// Where to write the outputs: OUT.npy (float32 [N, K]) or OUT.mat (single N x K, variable Y).
        #[arg(long)]
        output: PathBuf,
        /// Observations per forward pass.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Backend: cpu or wgpu (default: $BURN_DEVICE, else cpu).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Export the network: ONNX, PyTorch (model.py + weights), Burn (record + description), Rust source.
    Export {
        #[command(flatten)]
        net: NetArgs,
        /// onnx: one .onnx file; pytorch, burn, rust: a folder.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file (onnx) or folder (pytorch, burn, rust).
        #[arg(long)]
        output: PathBuf,
        /// ONNX opset version.
        #[arg(long, default_value_t = 17)]
        opset: i64,
        /// Leave the input normalization out of the exported graph (apply it yourself).
        #[arg(long)]
        no_normalization: bool,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Classify image files (PNG, JPEG, BMP, TIFF) or every image in a directory.
    Infer {
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
        /// Backend: cpu or wgpu (default: $BURN_DEVICE, else cpu).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump {
            file,
            var,
            depth,
            json,
        } => dump(&file, var.as_deref(), depth, json),
        Command::Inspect { file, net, json } => {
            inspect(file.or(net.model).as_deref(), net.var.as_deref(), json)
        }
        Command::Export {
            net,
            format,
            output,
            opset,
            no_normalization,
            force,
        } => export(&net, format, &output, opset, !no_normalization, force),
        Command::Predict {
            net,
            input,
            output,
            batch_size,
            backend,
            force,
        } => predict(&net, &input, &output, batch_size, backend, force),
        Command::Infer {
            net,
            images,
            top,
            batch_size,
            backend,
            json,
        } => infer(&net, &images, top, batch_size, backend, json),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dump(file: &Path, var: Option<&str>, depth: usize, json: bool) -> Result<()> {
    let mut mat =
        matcnn::mat::MatFile::read(file).with_context(|| format!("reading {}", file.display()))?;
    if let Some(name) = var {
        mat.get(name)
            .with_context(|| format!("in {}", file.display()))?;
        mat.variables.retain(|x| x.name == name);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matcnn::dump::json(
                &mat,
                &file.display().to_string(),
                depth
            ))?
        );
    } else {
        print!("{}", matcnn::dump::text(&mat, depth));
    }
    Ok(())
}

fn inspect(model: Option<&Path>, var: Option<&str>, json: bool) -> Result<()> {
    let net = load_network(model, var)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matcnn::inspect::json(&net))?
        );
    } else {
        let text = matcnn::inspect::text(&net);
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// The network's input as `[H, W, C]` and whether it takes images.
fn input_shape(net: &Network) -> Result<([usize; 3], bool)> {
    let input = net.input().context("the network has no input layer")?;
    Ok(match &input.kind {
        LayerKind::ImageInput { size, .. } => ([size.h, size.w, size.c], true),
        LayerKind::FeatureInput { size, .. } => ([1, 1, *size], false),
        LayerKind::SequenceInput { .. } => {
            bail!("sequence networks cannot run yet (layer '{}')", input.name)
        }
        _ => bail!("unexpected input layer '{}'", input.name),
    })
}

fn progress_bar(n: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}}"
    )) {
        pb.set_style(style);
    }
    pb
}

fn predict(
    net_args: &NetArgs,
    input: &str,
    output: &Path,
    batch_size: usize,
    backend: Option<Backend>,
    force: bool,
) -> Result<()> {
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "npy" && ext != "mat" {
        bail!(
            "--output {}: the extension must be .npy or .mat",
            output.display()
        );
    }
    let loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
    let net = &loaded.net;
    let (shape, spatial) = input_shape(net)?;
    let batch = data::load_array(input, shape, spatial)?;
    let device = device_for(backend)?;
    let model = loaded.build(&device)?;
    let pb = progress_bar(batch.shape[0], "observations");
    let (out, k) = model.predict(&batch.data, batch.shape, batch_size, &device, |done| {
        pb.set_position(done as u64)
    });
    pb.finish_and_clear();
    let n = batch.shape[0];
    let bytes = if ext == "npy" {
        data::npy_bytes(&out, &[n, k])
    } else {
        data::mat_bytes("Y", &out, n, k)
    };
    let mut inputs: Vec<PathBuf> = net_args.model.iter().cloned().collect();
    inputs.push(PathBuf::from(
        data::split_mat_spec(input).map(|(f, _)| f).unwrap_or(input),
    ));
    data::write_atomic(output, &bytes, &inputs, force)?;
    eprintln!("wrote {} ({n} x {k})", output.display());
    Ok(())
}

/// Softmax over each row (for networks whose output is not already probabilities).
fn softmax_rows(v: &mut [f32], k: usize) {
    for row in v.chunks_mut(k) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter_mut().for_each(|x| *x = (*x - m).exp() / s);
    }
}

fn infer(
    net_args: &NetArgs,
    images: &[PathBuf],
    top: usize,
    batch_size: usize,
    backend: Option<Backend>,
    json: bool,
) -> Result<()> {
    let loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
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
    let model = loaded.build(&device)?;
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

fn export(
    net_args: &NetArgs,
    format: ExportFormat,
    output: &Path,
    opset: i64,
    normalization: bool,
    force: bool,
) -> Result<()> {
    let loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
    let mut net = loaded.net.clone();
    if !net.unsupported().is_empty() {
        let list: Vec<String> = net
            .unsupported()
            .iter()
            .map(|l| match &l.kind {
                LayerKind::Unsupported { reason } => {
                    format!("layer '{}' ({}): {reason}", l.name, l.class)
                }
                _ => l.name.clone(),
            })
            .collect();
        bail!("{} cannot be exported: {}", loaded.label, list.join("; "));
    }
    // Weights of saved networks live in the record: build the module and copy them back.
    let device = device_for(Some(Backend::Cpu))?;
    let model = loaded.build(&device)?;
    model.write_back(&mut net);
    let opts = matcnn::export::ExportOptions {
        opset,
        normalization,
    };
    let inputs: Vec<PathBuf> = net_args.model.iter().cloned().collect();
    match format {
        ExportFormat::Onnx => {
            let bytes = matcnn::export::onnx(&net, &opts)?;
            data::write_atomic(output, &bytes, &inputs, force)?;
        }
        ExportFormat::Burn => matcnn::model::saved::save(&net, &model, output, force)?,
        ExportFormat::Pytorch | ExportFormat::Rust => {
            let files = if format == ExportFormat::Pytorch {
                matcnn::export::pytorch(&net, &opts)?
            } else {
                matcnn::export::rust_source(&net, &opts)?
            };
            data::write_folder_atomic(output, &files, &inputs, force)?;
        }
    }
    eprintln!("wrote {}", output.display());
    Ok(())
}
