//! `matcnn inspect`: a network layer by layer, and the other networks the file holds.

use super::{JsonArg, NetArgs};
use anyhow::{Context, Result};
use clap::Args;
use matcnn::mat::MatFile;
use matcnn::net::{self, Candidate};
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
    let var = args.net.var.as_deref();
    // A .mat file: also list every network found in it. Saved folders and the built-in network
    // go through `source` as in the other subcommands.
    let (net, found) = match &model {
        Some(p) if !matcnn::model::saved::is_saved(p) => {
            let file = match var {
                Some(v) => MatFile::read_vars(p, &[v]),
                None => MatFile::read(p),
            }
            .with_context(|| format!("reading {}", p.display()))?;
            let found: Vec<Candidate> = net::candidates(&file);
            let net = net::import_owned(file, var)
                .with_context(|| format!("importing the network from {}", p.display()))?;
            (net, found)
        }
        _ => (load_network(model.as_deref(), var)?, Vec::new()),
    };
    if args.out.json {
        let mut j = matcnn::inspect::json(&net);
        if let Some(o) = j.as_object_mut() {
            o.insert(
                "networks".into(),
                matcnn::inspect::networks_json(&found, &net.variable),
            );
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", matcnn::inspect::networks_text(&found, &net.variable));
        let text = matcnn::inspect::text(&net);
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}
