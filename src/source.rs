//! Where a network comes from: a `.mat` file (with `--var`), a network matcnn saved itself
//! (a folder with `network.json` and `weights.bpk`), or the built-in demo network.

use crate::mat::MatFile;
use crate::model::{MatNet, saved};
use crate::net::{self, Network};
use anyhow::{Context, Result};
use burn::prelude::Device;
use std::path::{Path, PathBuf};

/// The built-in demo network: MathWorks' MNIST workshop network (see models/license.txt).
pub const DEMO_MODEL: &[u8] = include_bytes!("../models/MNIST_Network.mat");
/// The name shown for the built-in network.
pub const DEMO_NAME: &str = "built-in MNIST demo (models/MNIST_Network.mat)";

/// A network description and, for saved networks, the record holding its weights.
pub struct Loaded {
    pub net: Network,
    pub record: Option<PathBuf>,
    /// Where it came from, for messages.
    pub label: String,
}

impl Loaded {
    /// The Burn module on `device`, with the weights from the `.mat` or the record.
    pub fn build(&self, device: &Device) -> Result<MatNet> {
        let m = match &self.record {
            Some(r) => saved::load_model(&self.net, r, device)?,
            None => MatNet::from_network(&self.net, device)?,
        };
        Ok(m)
    }

    /// The module for inference only: as [`build`](Self::build), with batch normalization
    /// folded into the layers that feed it and, on the CPU, matcnn's own convolution kernel.
    /// The values are moved from the description into the module (no second copy of the
    /// weights): afterwards `self.net` describes the network without its values.
    pub fn build_for_inference(&mut self, device: &Device) -> Result<MatNet> {
        let m = match &self.record {
            Some(r) => saved::load_model(&self.net, r, device)?,
            None => MatNet::from_network_owned(&mut self.net, device)?,
        };
        Ok(m.fold_batch_norm().0.prepare_cpu())
    }
}

/// Reads and imports the network in `model` (or the built-in demo network when `None`).
pub fn load(model: Option<&Path>, var: Option<&str>) -> Result<Loaded> {
    match model {
        Some(p) if saved::is_saved(p) => {
            let (net, record) = saved::load_description(p)?;
            Ok(Loaded {
                net,
                record: Some(record),
                label: p.display().to_string(),
            })
        }
        Some(p) => {
            // With --var only that variable is decoded (lazy reading); without it every variable
            // is, to find the network among them.
            let file = match var {
                Some(v) => MatFile::read_vars(p, &[v]),
                None => MatFile::read(p),
            }
            .with_context(|| format!("reading {}", p.display()))?;
            let net = net::import_owned(file, var)
                .with_context(|| format!("importing the network from {}", p.display()))?;
            Ok(Loaded {
                net,
                record: None,
                label: p.display().to_string(),
            })
        }
        None => {
            let file =
                MatFile::from_bytes(DEMO_MODEL).context("reading the built-in demo network")?;
            let net =
                net::import_owned(file, var).context("importing the built-in demo network")?;
            Ok(Loaded {
                net,
                record: None,
                label: DEMO_NAME.to_string(),
            })
        }
    }
}

/// The network description only.
pub fn load_network(model: Option<&Path>, var: Option<&str>) -> Result<Network> {
    Ok(load(model, var)?.net)
}
