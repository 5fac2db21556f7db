//! `matcnn finetune`: train the network further on labelled images.

use super::{BackendArg, ForceArg, NetArgs, input_shape, progress_bar};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args;
use matcnn::model::{device_for, saved};
use std::path::{Path, PathBuf};

/// Fine-tune the network on labelled images (one sub-folder per class) or a .mat with X and Y.
#[derive(Args)]
pub struct FinetuneArgs {
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
    #[arg(long, default_value_t = matcnn::train::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Learning rate (MATLAB's InitialLearnRate).
    #[arg(long, default_value_t = matcnn::train::DEFAULT_LR)]
    lr: f64,
    /// Learn-rate factor of the layer replaced for new classes (weights and bias). MATLAB's
    /// examples use 10 together with a small --lr such as 1e-4.
    #[arg(long, default_value_t = matcnn::train::DEFAULT_NEW_LAYER_LR_FACTOR)]
    new_layer_lr_factor: f64,
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
    /// Keep batch-normalization statistics and parameters as stored (the default).
    #[arg(long, conflicts_with = "train_bn")]
    freeze_bn: bool,
    /// Update batch-normalization statistics (MeanDecay) and train its scale and offset, as
    /// MATLAB's trainNetwork does.
    #[arg(long)]
    train_bn: bool,
    /// Random horizontal flips.
    #[arg(long)]
    augment_flip: bool,
    /// Random translations of up to this many pixels.
    #[arg(long, default_value_t = 0)]
    augment_translate: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: BackendArg,
    /// Continue from the last checkpoint in OUTPUT.
    #[arg(long)]
    resume: bool,
    /// Output folder: the fine-tuned network (accepted by --model), checkpoints/, training_log.csv, training_curve.png.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    overwrite: ForceArg,
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

pub fn run(args: FinetuneArgs) -> Result<()> {
    let FinetuneArgs {
        net: net_args,
        data,
        val,
        val_split,
        epochs,
        batch_size,
        lr,
        new_layer_lr_factor,
        optimizer,
        momentum,
        l2,
        freeze_until,
        freeze_bn,
        train_bn,
        augment_flip,
        augment_translate,
        seed,
        device: BackendArg { backend },
        resume,
        output,
        overwrite: ForceArg { force },
    } = args;
    let opts = &matcnn::train::TrainOptions {
        epochs,
        batch_size,
        lr,
        optimizer,
        momentum,
        l2,
        freeze_until,
        freeze_bn: freeze_bn || (matcnn::train::DEFAULT_FREEZE_BN && !train_bn),
        seed,
        flip: augment_flip,
        translate: augment_translate,
    };
    let (data_path, val_path, output) = (data.as_path(), val.as_deref(), output.as_path());
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
    let loaded = net_args.load()?;
    let mut net = loaded.net.clone();
    if let Some(channels) = sequence_channels(&net) {
        if opts.flip || opts.translate > 0 {
            bail!("--augment-flip and --augment-translate apply to images, not sequences");
        }
        let paths = SequencePaths {
            data: data_path,
            val: val_path,
            val_split,
            output,
            new_layer_lr_factor,
        };
        return run_sequence(&loaded, net, channels, opts, paths, backend, resume);
    }
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
            if matcnn::train::adapt_classes_with(
                &mut net,
                &train.classes,
                opts.seed,
                new_layer_lr_factor,
            )? {
                eprintln!(
                    "new classes ({}): replaced the layer that produces the class scores",
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
    eprint!("{}", matcnn::train::describe_recipe(&net, opts));
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

/// The features per time step of a sequence network (`None` for other networks).
fn sequence_channels(net: &matcnn::net::layer::Network) -> Option<usize> {
    match &net.input()?.kind {
        matcnn::net::layer::LayerKind::SequenceInput { size, .. } => Some(*size),
        _ => None,
    }
}

struct SequencePaths<'a> {
    data: &'a Path,
    val: Option<&'a Path>,
    val_split: Option<f64>,
    output: &'a Path,
    new_layer_lr_factor: f64,
}

/// A sequence classification network: `--data FILE.mat` with `X` (a cell of C x T sequences)
/// and `Y` (one label per sequence).
fn run_sequence(
    loaded: &matcnn::source::Loaded,
    mut net: matcnn::net::layer::Network,
    channels: usize,
    opts: &matcnn::train::TrainOptions,
    paths: SequencePaths,
    backend: Option<matcnn::model::Backend>,
    resume: bool,
) -> Result<()> {
    use matcnn::train::{SequenceDataset, sequence};
    let output = paths.output;
    sequence::check_sequence_classifier(&net)?;
    let read = |p: &Path, what: &str| -> Result<SequenceDataset> {
        if p.is_dir() {
            bail!(
                "{what} {}: a sequence network takes a .mat with X (a cell of {channels} x T \
                 sequences) and Y (one label per sequence)",
                p.display()
            );
        }
        SequenceDataset::from_mat(p, "X", "Y", channels)
            .with_context(|| format!("reading {what} {}", p.display()))
    };
    let mut train = read(paths.data, "--data")?;
    let mut val = match (paths.val, paths.val_split) {
        (Some(v), _) => Some(read(v, "--val")?),
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
                loaded.build(&device)?.write_back(&mut net);
            }
            if matcnn::train::adapt_classes_with(
                &mut net,
                &train.classes,
                opts.seed,
                paths.new_layer_lr_factor,
            )? {
                eprintln!(
                    "new classes ({}): replaced the layer that produces the class scores",
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
    eprint!("{}", matcnn::train::describe_recipe(&net, opts));
    let (model, _) = sequence::finetune_sequences(
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
