//! `matcnn inspect`: a network layer by layer.

use super::{JsonArg, NetArgs};
use anyhow::Result;
use clap::Args;
use matcnn::source::load_network;
use std::path::PathBuf;

/// Describe a network layer by layer (like MATLAB's analyzeNetwork).
#[derive(Args)]
#[command(mut_arg("json", |a| a.help("Print JSON (schema in the README)")))]
pub struct InspectArgs {
    /// The .mat file (same as --model).
    file: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    out: JsonArg,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let model = args.file.or(args.net.model);
    let net = load_network(model.as_deref(), args.net.var.as_deref())?;
    if args.out.json {
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
