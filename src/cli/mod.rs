//! The subcommands, one module each (its arguments and its `run`), and what they share: the
//! argument groups flattened into several subcommands, the input-shape check and progress bars.

pub mod bench;
pub mod detect;
pub mod dump;
pub mod export;
pub mod finetune;
pub mod infer;
pub mod inspect;
pub mod predict;

use anyhow::{Context, Result, bail};
use clap::Args;
use matcnn::model::Backend;
use matcnn::net::{LayerKind, Network};
use matcnn::source::{Loaded, load};
use std::path::PathBuf;

/// Which network to use.
#[derive(Args)]
pub struct NetArgs {
    /// The network: a .mat file (default: the built-in MNIST demo network).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the network is, when the file has several: a variable or a path into one, as
    /// `inspect` lists them (`model.model`, `detector.Network`, `s(2).net`, `nets{3}`).
    #[arg(long, value_name = "PATH")]
    pub var: Option<String>,
}

impl NetArgs {
    /// Reads the network (`--model`, else the built-in demo network).
    pub fn load(&self) -> Result<Loaded> {
        load(self.model.as_deref(), self.var.as_deref())
    }
}

/// `--backend`: where the network runs.
#[derive(Args)]
pub struct BackendArg {
    /// Backend: cpu or wgpu (default: $BURN_DEVICE, else cpu).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

/// `--json`: JSON output instead of text. A subcommand words its help itself with
/// `#[command(mut_arg("json", ...))]` where "Print JSON." says too little.
#[derive(Args)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--force`: replace an existing output.
#[derive(Args)]
pub struct ForceArg {
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The network's input as `[H, W, C]` and whether it takes images.
pub fn input_shape(net: &Network) -> Result<([usize; 3], bool)> {
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

pub fn progress_bar(n: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}}"
    )) {
        pb.set_style(style);
    }
    pb
}
