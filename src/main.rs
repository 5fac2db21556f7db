//! The `matcnn` command line: one function per subcommand.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "matcnn",
    version,
    about = "MATLAB-trained networks made native: read, run, export, fine-tune"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dump(file: &PathBuf, var: Option<&str>, depth: usize, json: bool) -> Result<()> {
    let mut mat =
        matcnn::mat::MatFile::read(file).with_context(|| format!("reading {}", file.display()))?;
    if let Some(name) = var {
        let v = mat
            .get(name)
            .with_context(|| format!("in {}", file.display()))?
            .clone();
        mat.variables.retain(|x| x.name == name);
        let _ = v;
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
