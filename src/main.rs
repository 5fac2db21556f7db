//! The `matcnn` command line: parses the arguments and hands each subcommand to its module in
//! `cli/` (its arguments and its `run`).

mod cli;

use clap::{Parser, Subcommand};

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

/// The subcommands, in the order `--help` lists them; each one's help is its arguments' doc comment.
#[derive(Subcommand)]
enum Command {
    Dump(cli::dump::DumpArgs),
    Inspect(cli::inspect::InspectArgs),
    Predict(cli::predict::PredictArgs),
    Export(cli::export::ExportArgs),
    Bench(cli::bench::BenchArgs),
    Finetune(cli::finetune::FinetuneArgs),
    Infer(cli::infer::InferArgs),
    Detect(cli::detect::DetectArgs),
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
    let Cli { command } = Cli::parse();
    let result = match command {
        Command::Dump(args) => cli::dump::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Predict(args) => cli::predict::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Finetune(args) => cli::finetune::run(args),
        Command::Infer(args) => cli::infer::run(args),
        Command::Detect(args) => cli::detect::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
