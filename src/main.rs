//! The `matcnn` command line: one function per subcommand.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::{Args, Parser, Subcommand};
use matcnn::data;
use matcnn::model::{Backend, device_for};
use matcnn::net::{LayerKind, Network};
use matcnn::source::{Loaded, load, load_network};
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
        /// them; for sequence networks a cell array of C x T sequences or one C x T matrix) or
        /// FILE.npy ([N, C, H, W] images, [N, C] features, [N, C, T] sequences).
        #[arg(long)]
        input: String,
        /// Where to write the outputs: OUT.npy (float32 [N, K]) or OUT.mat (single N x K, variable Y).
        /// Sequence networks with OutputMode 'sequence': OUT.npy [N, T, K] (equal lengths) or
        /// OUT.mat with Y (total time steps x K, sequence after sequence) and SequenceLengths.
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
    /// Time loading the network and its forward pass (median of repetitions), for comparisons.
    Bench {
        #[command(flatten)]
        net: NetArgs,
        /// Batch sizes to time (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,32")]
        batch: Vec<usize>,
        /// Timed forward passes per batch size.
        #[arg(long, default_value_t = 10)]
        repeat: usize,
        /// Untimed forward passes first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Input observations from FILE.npy or FILE.mat:VAR (as `predict`); default: seeded noise.
        #[arg(long)]
        input: Option<String>,
        /// Backend: cpu or wgpu (default: $BURN_DEVICE, else cpu).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// Time loading only (reading, importing, building the module): no forward pass.
        #[arg(long)]
        load_only: bool,
        /// Also time every layer and print the slowest (all of them with --json).
        #[arg(long)]
        profile: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fine-tune the network on labelled images (one sub-folder per class) or a .mat with X and Y.
    Finetune {
        #[command(flatten)]
        net: NetArgs,
        /// Training data: a folder of class sub-folders, or a .mat with X (H x W x C x N) and Y.
        #[arg(long)]
        data: PathBuf,
        /// Validation data (same forms as --data).
        #[arg(long, conflicts_with = "val_split")]
        val: Option<PathBuf>,
        /// Hold out this fraction of --data for validation (stratified).
        #[arg(long)]
        val_split: Option<f64>,
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Learning rate (MATLAB's InitialLearnRate).
        #[arg(long, default_value_t = 0.01)]
        lr: f64,
        #[arg(long, value_enum, default_value = "sgdm")]
        optimizer: matcnn::train::Optimizer,
        #[arg(long, default_value_t = 0.9)]
        momentum: f64,
        /// L2 regularization (MATLAB's L2Regularization), weighted by each parameter's L2Factor.
        #[arg(long, default_value_t = 1e-4)]
        l2: f64,
        /// Freeze every layer up to and including this one.
        #[arg(long)]
        freeze_until: Option<String>,
        /// Keep batch-normalization statistics and parameters as stored.
        #[arg(long)]
        freeze_bn: bool,
        /// Random horizontal flips.
        #[arg(long)]
        augment_flip: bool,
        /// Random translations of up to this many pixels.
        #[arg(long, default_value_t = 0)]
        augment_translate: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Backend: cpu or wgpu (default: $BURN_DEVICE, else cpu).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// Continue from the last checkpoint in OUTPUT.
        #[arg(long)]
        resume: bool,
        /// Output folder: the fine-tuned network (accepted by --model), checkpoints/, training_log.csv, training_curve.png.
        #[arg(long)]
        output: PathBuf,
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

/// glibc's allocator hands every allocation above its mmap threshold (dynamic, at most 32 MiB)
/// straight to the kernel and back, so each forward pass pays the page faults of its large
/// activations again (ResNet-18 at batch 32: 816 -> 711 ms when they are recycled instead;
/// SqueezeNet, whose first activations exceed 32 MiB, 193 -> 181 ms more without mmap).
/// Keeping freed memory up to 1 GiB in the heap trades a little retained memory for that;
/// loading's peak is unchanged (measured on the VGG-16 file). One arena for every thread: the
/// forward pass runs on rayon's threads, and a thread's own arena (heaps of at most 64 MiB)
/// would hand activations larger than that to mmap again (SqueezeNet at batch 32: 124 -> 150
/// ms).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() {
    tune_allocator();
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
        Command::Finetune {
            net,
            data,
            val,
            val_split,
            epochs,
            batch_size,
            lr,
            optimizer,
            momentum,
            l2,
            freeze_until,
            freeze_bn,
            augment_flip,
            augment_translate,
            seed,
            backend,
            resume,
            output,
            force,
        } => {
            let opts = matcnn::train::TrainOptions {
                epochs,
                batch_size,
                lr,
                optimizer,
                momentum,
                l2,
                freeze_until,
                freeze_bn,
                seed,
                flip: augment_flip,
                translate: augment_translate,
            };
            finetune(
                &net,
                &data,
                val.as_deref(),
                val_split,
                &opts,
                backend,
                resume,
                &output,
                force,
            )
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
        Command::Bench {
            net,
            batch,
            repeat,
            warmup,
            input,
            backend,
            load_only,
            profile,
            json,
        } => {
            let batch = if load_only { vec![] } else { batch };
            bench(
                &net,
                &batch,
                repeat,
                warmup,
                input.as_deref(),
                backend,
                profile,
                json,
            )
        }
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
    let mut mat = match var {
        Some(v) => matcnn::mat::MatFile::read_vars(file, &[v]),
        None => matcnn::mat::MatFile::read(file),
    }
    .with_context(|| format!("reading {}", file.display()))?;
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
            bail!(
                "'{}' takes sequences: use `matcnn predict` with a cell array of C x T sequences (fine-tuning and `infer` take images or features only)",
                input.name
            )
        }
        _ => bail!("unexpected input layer '{}'", input.name),
    })
}

#[allow(clippy::too_many_arguments)]
fn bench(
    net_args: &NetArgs,
    batches: &[usize],
    repeat: usize,
    warmup: usize,
    input: Option<&str>,
    backend: Option<Backend>,
    profile: bool,
    json: bool,
) -> Result<()> {
    let device = device_for(backend)?;
    // Loading: reading the file, importing the network and building the module on the device.
    let t0 = std::time::Instant::now();
    let mut loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
    let read_import_ms = t0.elapsed().as_secs_f64() * 1e3;
    let model = loaded
        .build_for_inference(&device)
        .with_context(|| format!("building {}", loaded.label))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (shape, spatial) = input_shape(&loaded.net)?;
    let [h, w, c] = shape;
    let data = match input {
        Some(spec) => Some(
            data::load_array(spec, shape, spatial)
                .with_context(|| format!("reading --input {spec}"))?
                .data,
        ),
        None => None,
    };
    if batches.contains(&0) {
        bail!("--batch: expected positive batch sizes");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(threads);
    let results: Vec<_> = batches
        .iter()
        .map(|&b| {
            matcnn::bench::forward(
                &model,
                [c, h, w],
                b,
                repeat,
                warmup,
                data.as_deref(),
                &device,
                profile,
            )
        })
        .collect();
    if json {
        let v = json!({
            "model": loaded.label,
            "backend": format!("{device:?}"),
            "threads": threads,
            "read_import_ms": read_import_ms,
            "load_ms": load_ms,
            "forward": results,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{} on {device:?}, {threads} threads", loaded.label);
        println!(
            "load (read + import + build): {load_ms:.1} ms (read + import {read_import_ms:.1} ms)"
        );
        for r in &results {
            println!(
                "batch {:>4}: median {:>9.2} ms over {} runs, {:>9.1} observations/s",
                r.batch,
                r.median_ms,
                r.times_ms.len(),
                r.throughput
            );
            if let Some(layers) = &r.layers {
                let total: f64 = layers.iter().map(|l| l.ms).sum();
                let mut slow: Vec<_> = layers.iter().collect();
                slow.sort_by(|a, b| b.ms.total_cmp(&a.ms));
                println!("  slowest layers (mean ms per pass, share of {total:.2} ms):");
                for l in slow.iter().take(15).filter(|l| l.ms > 0.0) {
                    println!(
                        "    {:<32} {:>9.3} ms {:>5.1}%",
                        l.layer,
                        l.ms,
                        100.0 * l.ms / total.max(f64::MIN_POSITIVE)
                    );
                }
            }
        }
    }
    Ok(())
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
    let mut loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
    let net = &loaded.net;
    if net.is_sequence() {
        return predict_sequences(
            &loaded, net_args, input, output, &ext, batch_size, backend, force,
        );
    }
    let (shape, spatial) = input_shape(net)?;
    let batch = data::load_array(input, shape, spatial)?;
    let device = device_for(backend)?;
    let model = loaded.build_for_inference(&device)?;
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

/// `predict` for sequence networks. Output: for OutputMode 'last', `[N, K]` (one row per
/// sequence); for 'sequence', `.npy` `[N, T, K]` (sequences of equal length only) or `.mat` with
/// `Y` (sum of T) x K (the time steps of each sequence as rows, sequence after sequence) and
/// `SequenceLengths` N x 1.
#[allow(clippy::too_many_arguments)]
fn predict_sequences(
    loaded: &Loaded,
    net_args: &NetArgs,
    input: &str,
    output: &Path,
    ext: &str,
    batch_size: usize,
    backend: Option<Backend>,
    force: bool,
) -> Result<()> {
    let net = &loaded.net;
    let in_layer = net.input().context("the network has no input layer")?;
    let LayerKind::SequenceInput { size, .. } = in_layer.kind else {
        bail!("unexpected input layer '{}'", in_layer.name);
    };
    let seqs = data::load_sequences(input, size)?;
    let device = device_for(backend)?;
    let model = loaded.build(&device)?;
    let pb = progress_bar(seqs.len(), "sequences");
    let outs = model.predict_sequences(&seqs, batch_size, &device, |done| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    let n = outs.len();
    let k = outs.first().map(|o| o.k).unwrap_or(0);
    let rows: usize = outs.iter().map(|o| o.steps).sum();
    let all: Vec<f32> = outs.iter().flat_map(|o| o.data.iter().copied()).collect();
    let last = outs.iter().all(|o| o.steps == 1) && !net.outputs_sequence();
    let (bytes, desc) = if last {
        let b = if ext == "npy" {
            data::npy_bytes(&all, &[n, k])
        } else {
            data::mat_bytes("Y", &all, n, k)
        };
        (b, format!("{n} x {k}"))
    } else if ext == "npy" {
        let t = outs[0].steps;
        if outs.iter().any(|o| o.steps != t) {
            bail!(
                "the sequences have different lengths: write a .mat output (Y with one row per time step, and SequenceLengths)"
            );
        }
        (
            data::npy_bytes(&all, &[n, t, k]),
            format!("{n} x {t} x {k}"),
        )
    } else {
        let (y, _) = matcnn::mat::permute_col_major(&all, &[k, rows], &[0, 1])
            .map_err(|e| anyhow::anyhow!(e))?;
        let lengths: Vec<f32> = outs.iter().map(|o| o.steps as f32).collect();
        (
            data::mat_file_bytes(&[
                ("Y", &[rows, k], &y),
                ("SequenceLengths", &[n, 1], &lengths),
            ]),
            format!("{rows} time steps x {k}, {n} sequences"),
        )
    };
    let mut inputs: Vec<PathBuf> = net_args.model.iter().cloned().collect();
    inputs.push(PathBuf::from(
        data::split_mat_spec(input).map(|(f, _)| f).unwrap_or(input),
    ));
    data::write_atomic(output, &bytes, &inputs, force)?;
    eprintln!("wrote {} ({desc})", output.display());
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
    let mut loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
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

fn load_dataset(path: &Path, [h, w, c]: [usize; 3]) -> Result<matcnn::train::Dataset> {
    let ds = if path.is_dir() {
        matcnn::train::Dataset::from_folder(path, h, w, c)?
    } else {
        matcnn::train::Dataset::from_mat(path, h, w, c)?
    };
    Ok(ds)
}

/// Progress bars per epoch, and one line per epoch on stderr.
struct Bars(Option<indicatif::ProgressBar>);

impl matcnn::train::Progress for Bars {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        let pb = progress_bar(batches, &format!("batches (epoch {epoch})"));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} epoch {prefix} {msg} {elapsed}",
        ) {
            pb.set_style(style);
        }
        pb.set_prefix(epoch.to_string());
        self.0 = Some(pb);
    }
    fn batch(&mut self, loss: f64, accuracy: f64) {
        if let Some(pb) = &self.0 {
            pb.set_message(format!("loss {loss:.4} accuracy {:.1}%", accuracy * 100.0));
            pb.inc(1);
        }
    }
    fn epoch_end(&mut self, l: &matcnn::train::EpochLog) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
        let val = match (l.val_loss, l.val_accuracy) {
            (Some(vl), Some(va)) => {
                format!(", validation loss {vl:.4} accuracy {:.2}%", va * 100.0)
            }
            _ => String::new(),
        };
        eprintln!(
            "epoch {}: loss {:.4} accuracy {:.2}%{val} ({:.1} s)",
            l.epoch,
            l.train_loss,
            l.train_accuracy * 100.0,
            l.seconds
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn finetune(
    net_args: &NetArgs,
    data_path: &Path,
    val_path: Option<&Path>,
    val_split: Option<f64>,
    opts: &matcnn::train::TrainOptions,
    backend: Option<Backend>,
    resume: bool,
    output: &Path,
    force: bool,
) -> Result<()> {
    use matcnn::model::saved;
    let inputs: Vec<PathBuf> = net_args
        .model
        .iter()
        .cloned()
        .chain([data_path.to_path_buf()])
        .collect();
    if inputs
        .iter()
        .filter_map(|i| i.canonicalize().ok())
        .any(|i| output.canonicalize().is_ok_and(|o| i.starts_with(&o)))
    {
        bail!("--output {} would overwrite an input", output.display());
    }
    if output.exists() && !resume && !force {
        bail!(
            "{} exists: pass --force to replace it, or --resume to continue its training",
            output.display()
        );
    }
    let loaded = load(net_args.model.as_deref(), net_args.var.as_deref())?;
    let mut net = loaded.net.clone();
    let (shape, spatial) = input_shape(&net)?;
    if !spatial {
        bail!("fine-tuning takes image networks (this one takes feature vectors)");
    }
    let mut train = load_dataset(data_path, shape)
        .with_context(|| format!("reading --data {}", data_path.display()))?;
    let mut val = match (val_path, val_split) {
        (Some(v), _) => {
            Some(load_dataset(v, shape).with_context(|| format!("reading --val {}", v.display()))?)
        }
        (None, Some(f)) => {
            if !(0.0..1.0).contains(&f) {
                bail!("--val-split {f}: expected a fraction in [0, 1)");
            }
            let (t, v) = train.split(f, opts.seed);
            train = t;
            Some(v)
        }
        (None, None) => None,
    };
    let device = device_for(backend)?;
    let ad = device.clone().autodiff();
    // Resume: the last checkpoint and the log.
    let ckpt_dir = output.join("checkpoints");
    let last = if resume {
        let mut c: Vec<PathBuf> = std::fs::read_dir(&ckpt_dir)
            .with_context(|| format!("--resume: no checkpoints in {}", ckpt_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| saved::is_saved(p))
            .collect();
        c.sort();
        Some(
            c.pop()
                .with_context(|| format!("--resume: no checkpoints in {}", ckpt_dir.display()))?,
        )
    } else {
        if output.exists() {
            std::fs::remove_dir_all(output)
                .with_context(|| format!("removing {}", output.display()))?;
        }
        None
    };
    let (model, start, history) = match &last {
        Some(ckpt) => {
            let (desc, record) = saved::load_description(ckpt)?;
            net = desc;
            let history =
                matcnn::train::read_log(&output.join("training_log.csv")).unwrap_or_default();
            let start = history.last().map_or(1, |l| l.epoch + 1);
            eprintln!("resuming from {} at epoch {start}", ckpt.display());
            (saved::load_model(&net, &record, &ad)?, start, history)
        }
        None => {
            if loaded.record.is_some() {
                // A saved network: its weights live in the record; put them into the description.
                loaded.build(&device)?.write_back(&mut net);
            }
            if matcnn::train::adapt_classes(&mut net, &train.classes, opts.seed)? {
                eprintln!(
                    "new classes ({}): replaced the last fully connected layer",
                    train.classes.join(", ")
                );
            }
            let m = matcnn::model::MatNet::from_network(&net, &ad)?;
            (m, 1, vec![])
        }
    };
    train.align_classes(&net.classes)?;
    if let Some(v) = val.as_mut() {
        v.align_classes(&net.classes)?;
    }
    let (model, _) = matcnn::train::finetune(
        &net,
        model,
        &train,
        val.as_ref(),
        opts,
        &ad,
        output,
        start,
        history,
        &mut Bars(None),
    )?;
    let inference = model.valid();
    inference.write_back(&mut net);
    // The result sits at the top of OUTPUT, beside checkpoints/ and the logs.
    std::fs::create_dir_all(output)?;
    let final_dir = output.join("network");
    saved::save(&net, &inference, &final_dir, true)?;
    std::fs::copy(
        final_dir.join(saved::DESCRIPTION),
        output.join(saved::DESCRIPTION),
    )?;
    std::fs::copy(final_dir.join(saved::RECORD), output.join(saved::RECORD))?;
    std::fs::remove_dir_all(&final_dir)?;
    eprintln!(
        "wrote {} (use it with --model {})",
        output.display(),
        output.display()
    );
    Ok(())
}
