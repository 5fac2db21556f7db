//! `matcnn predict`: a stored array through the network, the outputs to .npy or .mat.

use super::{BackendArg, ForceArg, NetArgs, input_shape, progress_bar};
use anyhow::{Context, Result, bail};
use clap::Args;
use matcnn::data;
use matcnn::model::{Backend, device_for};
use matcnn::net::{LayerKind, Network};
use matcnn::source::Loaded;
use std::path::{Path, PathBuf};

/// Run a stored array through the network and write the outputs.
#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    net: NetArgs,
    /// The input: FILE.mat:VAR (H x W x C x N images or C x N features, as MATLAB stores
    /// them; for sequence networks a cell array of C x T sequences or one C x T matrix, for
    /// image-sequence networks a cell array of H x W x C x T arrays) or FILE.npy ([N, C, H, W]
    /// images, [N, C] features, [N, C, T] sequences, [N, T, C, H, W] image sequences). Networks
    /// without a fully connected or flatten layer over space take images of any height and width.
    #[arg(long)]
    input: String,
    /// Where to write the outputs: OUT.npy (float32 [N, K]) or OUT.mat (single N x K, variable Y);
    /// image outputs (segmentation scores, denoised images) OUT.npy [N, C, H, W] or OUT.mat
    /// H x W x C x N, as MATLAB's `predict` returns them.
    /// Sequence networks with OutputMode 'sequence': OUT.npy [N, T, K] (equal lengths) or
    /// OUT.mat with Y (total time steps x K, sequence after sequence) and SequenceLengths.
    #[arg(long)]
    output: PathBuf,
    /// Observations per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[command(flatten)]
    device: BackendArg,
    #[command(flatten)]
    overwrite: ForceArg,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let PredictArgs {
        net: net_args,
        input,
        output,
        batch_size,
        device: BackendArg { backend },
        overwrite: ForceArg { force },
    } = args;
    let (net_args, input, output) = (&net_args, input.as_str(), output.as_path());
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
    let mut loaded = net_args.load()?;
    matcnn::model::check_supported(&loaded.net)
        .with_context(|| format!("building {}", loaded.label))?;
    let net = &loaded.net;
    if net.is_sequence() {
        return predict_sequences(
            &loaded, net_args, input, output, &ext, batch_size, backend, force,
        );
    }
    let (shape, spatial) = input_shape(net)?;
    // Images of any size are read; the network then says whether it takes that size.
    let batch = read_input(net, input, shape, spatial)?;
    if spatial {
        set_input_size(&mut loaded.net, batch.shape[2], batch.shape[3])?;
    }
    let device = device_for(backend)?;
    let model = loaded.build_for_inference(&device)?;
    let pb = progress_bar(batch.shape[0], "observations");
    let (out, chw) = model.predict_spatial(&batch.data, batch.shape, batch_size, &device, |done| {
        pb.set_position(done as u64)
    });
    pb.finish_and_clear();
    let n = batch.shape[0];
    let (bytes, desc) = output_bytes(&out, n, chw, &ext)?;
    let mut inputs: Vec<PathBuf> = net_args.model.iter().cloned().collect();
    inputs.push(PathBuf::from(
        data::split_mat_spec(input).map(|(f, _)| f).unwrap_or(input),
    ));
    data::write_atomic(output, &bytes, &inputs, force)?;
    eprintln!("wrote {} ({desc})", output.display());
    Ok(())
}

/// Reads `predict`'s (or `bench`'s) input: images of any size (the network then says whether it
/// takes it), or, when that read fails for a network of fixed size, the error naming its size.
pub fn read_input(
    net: &Network,
    input: &str,
    shape: [usize; 3],
    spatial: bool,
) -> Result<data::Batch> {
    if !spatial {
        return Ok(data::load_array(input, shape, spatial)?);
    }
    match data::load_array(input, [0, 0, shape[2]], spatial) {
        Ok(b) => Ok(b),
        Err(e) if net.open_size() => Err(e.into()),
        Err(_) => Ok(data::load_array(input, shape, spatial)?),
    }
}

/// Prepares `net` for `h x w` inputs ([`Network::set_input_size`]), with the CLI's wording.
pub fn set_input_size(net: &mut Network, h: usize, w: usize) -> Result<()> {
    net.set_input_size(h, w)
        .with_context(|| format!("the network cannot take {h}x{w} images"))
}

/// The bytes of `predict`'s output file and its size in words. `out` is row-major
/// `[N, C, H, W]`: vector outputs (`H = W = 1`) are written `[N, C]` (`.npy`) or N x C (`.mat`,
/// variable `Y`); image outputs `[N, C, H, W]` (`.npy`) or H x W x C x N (`.mat`), as MATLAB's
/// `predict` returns them.
pub fn output_bytes(
    out: &[f32],
    n: usize,
    [c, h, w]: [usize; 3],
    ext: &str,
) -> Result<(Vec<u8>, String)> {
    if h * w == 1 {
        let b = if ext == "npy" {
            data::npy_bytes(out, &[n, c])
        } else {
            data::mat_bytes("Y", out, n, c)
        };
        return Ok((b, format!("{n} x {c}")));
    }
    let b = if ext == "npy" {
        data::npy_bytes(out, &[n, c, h, w])
    } else {
        // Row-major [N, C, H, W] is column-major [W, H, C, N]; MATLAB's H x W x C x N in
        // column-major order is row-major [N, C, W, H].
        let (y, _) = matcnn::mat::permute_col_major(out, &[w, h, c, n], &[3, 2, 0, 1])
            .map_err(|e| anyhow::anyhow!(e))?;
        data::mat_file_bytes(&[("Y", &[h, w, c, n], &y)])
    };
    Ok((b, format!("{n} x {c} x {h} x {w}")))
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
    let LayerKind::SequenceInput { size, frame, .. } = in_layer.kind else {
        bail!("unexpected input layer '{}'", in_layer.name);
    };
    let seqs = match frame {
        // Image sequences (CNN-LSTM): H x W x C x T arrays or [N, T, C, H, W].
        Some(s) => data::load_image_sequences(input, [s.h, s.w, s.c])?,
        None => data::load_sequences(input, size)?,
    };
    let device = device_for(backend)?;
    let model = loaded.build(&device)?;
    // Token ids and sequence lengths the transformer layers refuse, with the input named.
    model
        .check_sequences(&seqs)
        .with_context(|| format!("--input {input}"))?;
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
