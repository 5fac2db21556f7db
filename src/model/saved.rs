//! Networks matcnn saved itself: a folder holding `network.json` (the description: layers,
//! hyperparameters, tensor shapes, class names; no weight values) and `weights.bpk` (the Burn
//! record of the module: every parameter and running statistic). `infer`, `predict`, `inspect`
//! and `export` accept the folder (or its `network.json`) in place of a `.mat`.

use super::{MatNet, ModelError};
use crate::net::Network;
use burn::module::Module;
use burn::prelude::Device;
use std::path::{Path, PathBuf};

pub const DESCRIPTION: &str = "network.json";
pub const RECORD: &str = "weights.bpk";
/// Format marker written into the description.
const FORMAT: &str = "matcnn-network-1";

fn record_err(path: &Path, msg: impl ToString) -> ModelError {
    ModelError::Record {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// True when `path` is a folder (or `network.json`) written by [`save`].
pub fn is_saved(path: &Path) -> bool {
    (path.is_dir() && path.join(DESCRIPTION).is_file())
        || path.file_name().is_some_and(|n| n == DESCRIPTION)
}

/// Saves the description and the module's parameters into the folder `dir`, atomically: the
/// files are written into a temporary folder beside it, which is then renamed. An existing
/// `dir` is replaced only with `force`.
pub fn save(net: &Network, model: &MatNet, dir: &Path, force: bool) -> Result<(), ModelError> {
    if dir.exists() && !force {
        return Err(record_err(dir, "exists: pass --force to replace it"));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let tmp = parent.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| record_err(&tmp, e))?;
    let write = || -> Result<(), ModelError> {
        let mut json = serde_json::to_value(net).map_err(|e| record_err(dir, e))?;
        if let Some(m) = json.as_object_mut() {
            m.insert("format".into(), FORMAT.into());
        }
        let text = serde_json::to_string_pretty(&json).map_err(|e| record_err(dir, e))?;
        std::fs::write(tmp.join(DESCRIPTION), text).map_err(|e| record_err(&tmp, e))?;
        model
            .clone()
            .save_file(tmp.join(RECORD))
            .map_err(|e| record_err(&tmp.join(RECORD), format!("{e:?}")))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| record_err(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| record_err(dir, e))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

/// Reads the description of a saved network; returns it with the record's path.
pub fn load_description(path: &Path) -> Result<(Network, PathBuf), ModelError> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let desc = dir.join(DESCRIPTION);
    let text = std::fs::read_to_string(&desc).map_err(|e| record_err(&desc, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| record_err(&desc, e))?;
    if json.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(record_err(
            &desc,
            format!("not a matcnn network description (expected format '{FORMAT}')"),
        ));
    }
    let net: Network = serde_json::from_value(json).map_err(|e| record_err(&desc, e))?;
    Ok((net, dir.join(RECORD)))
}

/// Builds the module of a saved network and loads its parameters.
pub fn load_model(net: &Network, record: &Path, device: &Device) -> Result<MatNet, ModelError> {
    let model = MatNet::from_network(net, device)?;
    model
        .try_load_file(record)
        .map_err(|e| record_err(record, format!("{e:?}")))
}
