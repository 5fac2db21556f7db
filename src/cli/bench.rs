//! `matcnn bench`: time loading and the forward pass.

use super::{BackendArg, JsonArg, NetArgs, input_shape};
use anyhow::{Context, Result, bail};
use clap::Args;
use matcnn::model::device_for;
use serde_json::json;

/// Time loading the network and its forward pass (median of repetitions), for comparisons.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Batch sizes to time (comma-separated; default 1,32, with --train 32,128).
    #[arg(long, value_delimiter = ',')]
    batch: Option<Vec<usize>>,
    /// Timed forward passes per batch size.
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    /// Untimed forward passes first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Input observations from FILE.npy or FILE.mat:VAR (as `predict`); default: seeded noise.
    #[arg(long)]
    input: Option<String>,
    /// Input height x width (e.g. 256x256) for networks that take any size (MatConvNet
    /// networks, fully convolutional networks); default: the declared size, else 224x224.
    #[arg(long, value_parser = parse_size)]
    size: Option<[usize; 2]>,
    #[command(flatten)]
    device: BackendArg,
    /// Sequence networks: time steps of each generated input sequence.
    #[arg(long, default_value_t = 128)]
    steps: usize,
    /// Time loading only (reading, importing, building the module): no forward pass.
    #[arg(long)]
    load_only: bool,
    /// Also time every layer and print the slowest (all of them with --json).
    #[arg(long)]
    profile: bool,
    /// Time full training steps (forward, loss, backward, update) instead of the forward pass.
    #[arg(long)]
    train: bool,
    /// Solver of the timed training steps (with --train).
    #[arg(long, value_enum, default_value = "sgdm", requires = "train")]
    optimizer: matcnn::train::Optimizer,
    #[command(flatten)]
    out: JsonArg,
}

/// The input size `bench` times networks of open size at, unless `--size` says otherwise.
pub const DEFAULT_OPEN_SIZE: [usize; 2] = [224, 224];

/// `HxW` (or `H,W`) → `[H, W]`.
pub fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',']).collect();
    match parts.as_slice() {
        [a, b] => match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok([h, w]),
            _ => Err(format!("expected HxW with positive integers, found '{s}'")),
        },
        _ => Err(format!("expected HxW (e.g. 256x256), found '{s}'")),
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        net: net_args,
        batch,
        repeat,
        warmup,
        input,
        size,
        device: BackendArg { backend },
        load_only,
        profile,
        out: JsonArg { json },
        steps,
        train,
        optimizer,
    } = args;
    if train {
        let batch = batch.unwrap_or_else(|| vec![32, 128]);
        let opts = TrainBench {
            batch: &batch,
            repeat,
            warmup,
            size,
            optimizer,
            profile,
            json,
        };
        return run_train(&net_args, backend, opts);
    }
    let batch = batch.unwrap_or_else(|| vec![1, 32]);
    let batches: &[usize] = if load_only { &[] } else { &batch };
    let input = input.as_deref();
    let device = device_for(backend)?;
    // Loading: reading the file, importing the network and building the module on the device.
    let t0 = std::time::Instant::now();
    let mut loaded = net_args.load()?;
    let read_import_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (shape, spatial) = match sequence_shape(&loaded.net, steps, input)? {
        Some(s) => (s, false),
        None => input_shape(&loaded.net)?,
    };
    let [mut h, mut w, c] = shape;
    let t_input = std::time::Instant::now();
    let data = match input {
        Some(spec) => {
            let b = super::predict::read_input(&loaded.net, spec, shape, spatial)
                .with_context(|| format!("reading --input {spec}"))?;
            [h, w] = [b.shape[2], b.shape[3]];
            Some(b.data)
        }
        None => None,
    };
    if spatial {
        if let Some(s) = size {
            if data.is_some() && [h, w] != s {
                bail!("--size {}x{} disagrees with --input ({h}x{w})", s[0], s[1]);
            }
            [h, w] = s;
        } else if h == 0 || w == 0 {
            [h, w] = DEFAULT_OPEN_SIZE;
        }
        super::predict::set_input_size(&mut loaded.net, h, w)?;
    } else if size.is_some() {
        bail!("--size: the network takes feature vectors or sequences, not images");
    }
    // Reading --input is not loading.
    let input_ms = t_input.elapsed().as_secs_f64() * 1e3;
    let model = loaded
        .build_for_inference(&device)
        .with_context(|| format!("building {}", loaded.label))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3 - input_ms;
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

/// For a sequence network: `[1, steps, C]` (inputs `[N, C, 1, steps]` of seeded noise).
fn sequence_shape(
    net: &matcnn::net::Network,
    steps: usize,
    input: Option<&str>,
) -> Result<Option<[usize; 3]>> {
    let Some(matcnn::net::LayerKind::SequenceInput { size, .. }) = net.input().map(|l| &l.kind)
    else {
        return Ok(None);
    };
    if input.is_some() {
        bail!(
            "--input is not supported for sequence networks: they are timed on seeded noise of --steps time steps"
        );
    }
    if steps == 0 {
        bail!("--steps: expected a positive number of time steps");
    }
    Ok(Some([1, steps, *size]))
}

/// What `bench --train` times.
struct TrainBench<'a> {
    batch: &'a [usize],
    repeat: usize,
    warmup: usize,
    size: Option<[usize; 2]>,
    optimizer: matcnn::train::Optimizer,
    profile: bool,
    json: bool,
}

/// `bench --train`: the median time of one training step per batch size, with the defaults of
/// MATLAB's trainingOptions (learning rate 0.01, L2 1e-4, momentum 0.9, batch normalization in
/// training mode) and the chosen solver.
fn run_train(
    net_args: &NetArgs,
    backend: Option<matcnn::model::Backend>,
    o: TrainBench,
) -> Result<()> {
    if o.batch.contains(&0) {
        bail!("--batch: expected positive batch sizes");
    }
    let device = device_for(backend)?;
    let ad = device.clone().autodiff();
    let loaded = net_args.load()?;
    let mut net = loaded.net.clone();
    let ([mut h, mut w, c], spatial) = input_shape(&net)?;
    if !spatial {
        bail!("bench --train takes image networks");
    }
    if let Some(s) = o.size {
        [h, w] = s;
        super::predict::set_input_size(&mut net, h, w)?;
    } else if h == 0 || w == 0 {
        [h, w] = DEFAULT_OPEN_SIZE;
        super::predict::set_input_size(&mut net, h, w)?;
    }
    if loaded.record.is_some() {
        loaded.build(&device)?.write_back(&mut net);
    }
    let classes = net.classes.len().max(1);
    // The full step: batch normalization in training mode, every layer learning.
    let opts = matcnn::train::TrainOptions {
        optimizer: o.optimizer,
        lr: 0.01,
        freeze_bn: false,
        ..Default::default()
    };
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut results = Vec::new();
    for &b in o.batch {
        // A fresh network per batch size: every size starts from the same weights.
        let model = matcnn::model::MatNet::from_network(&net, &ad)
            .with_context(|| format!("building {}", loaded.label))?;
        let mut trainer = matcnn::train::Trainer::new(&net, model, &opts)?;
        results.push(matcnn::bench::train(
            &mut trainer,
            [c, h, w],
            classes,
            b,
            (o.repeat, o.warmup),
            &ad,
            o.profile,
        ));
    }
    if o.json {
        let v = json!({
            "model": loaded.label,
            "backend": format!("{device:?}"),
            "threads": threads,
            "optimizer": format!("{:?}", o.optimizer).to_lowercase(),
            "train": results,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} on {device:?}, {threads} threads: training steps ({:?})",
        loaded.label, o.optimizer
    );
    for r in &results {
        println!(
            "batch {:>4}: median {:>9.2} ms per step over {} steps, {:>9.1} observations/s",
            r.batch,
            r.median_ms,
            r.times_ms.len(),
            r.throughput
        );
        if let Some(p) = &r.phases_ms {
            println!(
                "  forward+loss {:.2} ms, backward {:.2} ms, update {:.2} ms",
                p.forward_loss, p.backward, p.update
            );
        }
        if let Some(layers) = &r.layers {
            let total: f64 = layers.iter().map(|l| l.ms).sum();
            let mut slow: Vec<_> = layers.iter().collect();
            slow.sort_by(|a, b| b.ms.total_cmp(&a.ms));
            println!(
                "  slowest layers of the training forward pass (mean ms, share of {total:.2} ms):"
            );
            for l in slow.iter().take(10).filter(|l| l.ms > 0.0) {
                println!(
                    "    {:<32} {:>9.3} ms {:>5.1}%",
                    l.layer,
                    l.ms,
                    100.0 * l.ms / total.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
    Ok(())
}
