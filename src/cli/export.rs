//! `matcnn export`: ONNX, PyTorch, Burn or Rust source.

use super::{ForceArg, NetArgs};
use anyhow::{Result, bail};
use clap::Args;
use matcnn::data;
use matcnn::model::{Backend, device_for};
use matcnn::net::LayerKind;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Onnx,
    Pytorch,
    Burn,
    Rust,
}

/// Export the network: ONNX, PyTorch (model.py + weights), Burn (record + description), Rust source.
#[derive(Args)]
pub struct ExportArgs {
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
    #[command(flatten)]
    overwrite: ForceArg,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let ExportArgs {
        net: net_args,
        format,
        output,
        opset,
        no_normalization,
        overwrite: ForceArg { force },
    } = args;
    let (output, normalization) = (output.as_path(), !no_normalization);
    let loaded = net_args.load()?;
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
