//! Where a network comes from: a `.mat` file (with `--var`), or the built-in demo network.

use crate::mat::MatFile;
use crate::net::{self, Network};
use anyhow::{Context, Result};
use std::path::Path;

/// The built-in demo network: MathWorks' MNIST workshop network (see models/license.txt).
pub const DEMO_MODEL: &[u8] = include_bytes!("../models/MNIST_Network.mat");
/// The name `--model` shows for the built-in network.
pub const DEMO_NAME: &str = "built-in MNIST demo (models/MNIST_Network.mat)";

/// Reads and imports the network in `model` (or the built-in demo network when `None`).
pub fn load_network(model: Option<&Path>, var: Option<&str>) -> Result<Network> {
    let (file, label) = match model {
        Some(p) => (
            MatFile::read(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            MatFile::from_bytes(DEMO_MODEL).context("reading the built-in demo network")?,
            DEMO_NAME.to_string(),
        ),
    };
    net::import(&file, var).with_context(|| format!("importing the network from {label}"))
}
