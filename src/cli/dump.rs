//! `matcnn dump`: a .mat file's value tree.

use super::JsonArg;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Print a .mat file's value tree: variables, classes, sizes, objects and their properties.
#[derive(Args)]
#[command(mut_arg("json", |a| a.help("Print JSON (schema in the README) instead of text")))]
pub struct DumpArgs {
    /// The .mat file (v5/v7 or v7.3).
    file: PathBuf,
    /// Show only this variable.
    #[arg(long)]
    var: Option<String>,
    /// How many levels of structs, cells and objects to expand.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    #[command(flatten)]
    out: JsonArg,
}

pub fn run(args: DumpArgs) -> Result<()> {
    let DumpArgs {
        file,
        var,
        depth,
        out: JsonArg { json },
    } = args;
    let var = var.as_deref();
    let mut mat = match var {
        Some(v) => matcnn::mat::MatFile::read_vars(&file, &[v]),
        None => matcnn::mat::MatFile::read(&file),
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
