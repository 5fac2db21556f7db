//! Normalization layers: batch, group (layer, instance) and cross-channel (local response)
//! normalization.

use serde::{Deserialize, Serialize};

use crate::mat::value::NumericArray;
use crate::net::error::{Ctx, NetError};
use crate::net::fields::{self, Fields};
use crate::net::layer::{LayerKind, Param, Shape, Tensor};
use crate::net::layout;
use crate::net::matconvnet::{Params, get};
use crate::net::shape::{self, Declared};

use super::{Imported, Names, param_numel, param_tensor, unsupported};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    pub channels: usize,
    pub epsilon: f64,
    pub mean: Option<Tensor>,
    pub variance: Option<Tensor>,
    pub scale: Option<Param>,
    pub offset: Option<Param>,
    /// Training-time decay of the running statistics (MATLAB `MeanDecay`/`VarianceDecay`).
    pub mean_decay: f64,
    pub variance_decay: f64,
}

/// Group normalization; layer normalization over an image is one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupNorm {
    pub groups: usize,
    pub channels: usize,
    pub epsilon: f64,
    pub scale: Option<Param>,
    pub offset: Option<Param>,
}

/// Cross-channel (local response) normalization: `x / (k + alpha * sum_window(x^2) / n)^beta`.
/// MATLAB's window for even `n` takes `floor((n-1)/2)` channels before and `floor(n/2)` after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lrn {
    pub window: usize,
    /// MATLAB's `Alpha`; MatConvNet's alpha (which the sum is not divided by) is stored times `n`.
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

pub const BATCH_NORM: Names = Names {
    kind: "BatchNorm",
    stem: "batchnorm",
};
pub const GROUP_NORM: Names = Names {
    kind: "GroupNorm",
    stem: "groupnorm",
};
pub const LRN: Names = Names {
    kind: "Lrn",
    stem: "crossnorm",
};

impl BatchNorm {
    pub(crate) fn describe(&self) -> String {
        format!("batch normalization with {} channels", self.channels)
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        self.mean
            .as_mut()
            .into_iter()
            .chain(self.variance.as_mut())
            .chain(param_tensor(&mut self.scale))
            .chain(param_tensor(&mut self.offset))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.scale) + param_numel(&self.offset)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.mean.is_some()
            && self.variance.is_some()
            && self.scale.is_some()
            && self.offset.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        shape::check_channels(&mut self.channels, "NumChannels", x.c, ctx)?;
        Ok(Some(x))
    }
}

impl GroupNorm {
    pub(crate) fn describe(&self) -> String {
        if self.groups == 1 {
            format!("layer normalization with {} channels", self.channels)
        } else {
            format!(
                "group normalization, {} groups, {} channels",
                self.groups, self.channels
            )
        }
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.scale)
            .into_iter()
            .chain(param_tensor(&mut self.offset))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.scale) + param_numel(&self.offset)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.scale.is_some() && self.offset.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        let gn = self;
        shape::check_channels(&mut gn.channels, "NumChannels", x.c, ctx)?;
        if gn.groups == 0 {
            gn.groups = x.c;
        }
        if gn.groups == 0 || !x.c.is_multiple_of(gn.groups) {
            return Err(ctx.shape(
                "NumGroups",
                format!("a divisor of the {} channels", x.c),
                gn.groups.to_string(),
            ));
        }
        Ok(Some(x))
    }
}

impl Lrn {
    pub(crate) fn describe(&self) -> String {
        format!(
            "cross channel normalization with {} channels per element",
            self.window
        )
    }
}

// Deep Learning Toolbox import.

/// Batch, layer, group, instance and cross-channel normalization classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "BatchNormalizationLayer" => LayerKind::BatchNorm(batch_norm(f)?),
        "LayerNormalizationLayer" => LayerKind::LayerNorm(layer_norm(f)?),
        "GroupNormalizationLayer" | "InstanceNormalizationLayer" => {
            LayerKind::GroupNorm(group_norm(short, f)?)
        }
        "CrossChannelNormalizationLayer" => LayerKind::Lrn(Lrn {
            window: f.usize("WindowChannelSize")?,
            alpha: f.f64_or("Alpha", 1e-4)?,
            beta: f.f64_or("Beta", 0.75)?,
            k: f.f64_or("K", 2.0)?,
        }),
        _ => return Ok(None),
    }))
}

fn batch_norm(f: &Fields) -> Result<BatchNorm, NetError> {
    let mean_a = f.numeric("TrainedMean")?;
    let channels = f
        .opt_usize("NumChannels")?
        .or(mean_a.map(|a| a.numel()))
        .unwrap_or(0);
    let vec_of = |name: &str, a: Option<&NumericArray>| -> Result<Option<Tensor>, NetError> {
        a.map(|a| layout::vector(a, channels).map_err(|e| f.layout_err(name, e)))
            .transpose()
    };
    let param = |name: &str| -> Result<Option<Param>, NetError> {
        match f.param(name)? {
            Some(p) => Ok(Some(p.with(
                layout::vector(p.value, channels).map_err(|e| f.layout_err(name, e))?,
            ))),
            None => Ok(None),
        }
    };
    Ok(BatchNorm {
        channels,
        epsilon: f.f64_or("Epsilon", 1e-5)?,
        mean: vec_of("TrainedMean", mean_a)?,
        variance: vec_of("TrainedVariance", f.numeric("TrainedVariance")?)?,
        scale: param("Scale")?,
        offset: param("Offset")?,
        mean_decay: f.f64_or("MeanDecay", 0.1)?,
        variance_decay: f.f64_or("VarianceDecay", 0.1)?,
    })
}

fn group_norm(short: &str, f: &Fields) -> Result<GroupNorm, NetError> {
    let scale_ref = f.param("Scale")?;
    let channels = f
        .opt_usize("NumChannels")?
        .or(scale_ref.as_ref().map(|p| p.value.numel()))
        .unwrap_or(0);
    let groups = match short {
        "LayerNormalizationLayer" => 1,
        "InstanceNormalizationLayer" => 0,
        _ => match f.string("NumGroups").as_deref() {
            Some("all-channels") => 1,
            Some("channel-wise") => 0,
            _ => f.opt_usize("NumGroups")?.unwrap_or(0),
        },
    };
    let scale = match scale_ref {
        Some(p) => {
            Some(p.with(layout::vector(p.value, channels).map_err(|e| f.layout_err("Scale", e))?))
        }
        None => None,
    };
    let offset = match f.param("Offset")? {
        Some(p) => {
            Some(p.with(layout::vector(p.value, channels).map_err(|e| f.layout_err("Offset", e))?))
        }
        None => None,
    };
    Ok(GroupNorm {
        groups,
        channels,
        epsilon: f.f64_or("Epsilon", 1e-5)?,
        scale,
        offset,
    })
}

// MatConvNet import.

/// `bnorm`/`dagnn.BatchNorm` and `normalize`/`lrn`/`dagnn.LRN`.
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    params: &Params,
    _declared: &mut Declared,
) -> Imported {
    match ty {
        "bnorm" | "BatchNorm" => matconvnet_bnorm(f, params),
        "normalize" | "lrn" | "LRN" => matconvnet_lrn(f),
        _ => Ok(None),
    }
}

fn matconvnet_bnorm(f: &Fields, params: &Params) -> Imported {
    let (Some(g), Some(b), Some(m)) = (get(params, 0), get(params, 1), get(params, 2)) else {
        return unsupported(
            "batch normalization without stored multipliers, biases and moments".into(),
        );
    };
    let channels = g.value.numel();
    let scale =
        g.param(layout::vector(g.value, channels).map_err(|e| f.layout_err("multipliers", e))?);
    let offset = b.param(layout::vector(b.value, channels).map_err(|e| f.layout_err("biases", e))?);
    let (mean, variance) =
        layout::matconvnet_moments(m.value, channels).map_err(|e| f.layout_err("moments", e))?;
    // The stored sigma already includes epsilon (see layout::matconvnet_moments).
    Ok(Some(LayerKind::BatchNorm(BatchNorm {
        channels,
        epsilon: 0.0,
        mean: Some(mean),
        variance: Some(variance),
        scale: Some(scale),
        offset: Some(offset),
        mean_decay: 0.1,
        variance_decay: 0.1,
    })))
}

fn matconvnet_lrn(f: &Fields) -> Imported {
    let p = f
        .get("param")
        .and_then(|v| v.to_f64_vec())
        .unwrap_or_default();
    let [n, kappa, alpha, beta] = p.as_slice() else {
        return Err(f.err(
            "param",
            "[N kappa alpha beta]",
            f.get("param").map(fields::describe).unwrap_or_default(),
        ));
    };
    // vl_nnnormalize does not divide alpha by N; the description's formula does.
    Ok(Some(LayerKind::Lrn(Lrn {
        window: *n as usize,
        alpha: alpha * n,
        beta: *beta,
        k: *kappa,
    })))
}

// Layer normalization (`layerNormalizationLayer`) on sequences, features and images.

/// `layerNormalizationLayer`: `y = Scale[c] * (x - mean) / sqrt(var + Epsilon) + Offset[c]`, the
/// statistics of each observation over the dimensions [`LayerNorm::channel_only`] picks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    pub channels: usize,
    pub epsilon: f64,
    /// MATLAB's `OperationDimension` ('auto', 'channel-only', 'spatial-channel',
    /// 'batch-excluded'); empty when the file does not store it.
    #[serde(default)]
    pub operation_dimension: String,
    /// `[C]`.
    pub scale: Option<Param>,
    /// `[C]`.
    pub offset: Option<Param>,
}

pub const LAYER_NORM: Names = Names {
    kind: "LayerNorm",
    stem: "layernorm",
};

impl LayerNorm {
    /// True when the statistics are taken over the channels only, separately at each position
    /// (each time step of a sequence, each pixel of an image); false when over all of an
    /// observation's channels, rows, columns and time steps. `sequence`: the input is `C x T`.
    ///
    /// OperationDimension (R2023a+): 'channel-only' → channels only; 'spatial-channel' →
    /// channels and spatial dimensions, which for a sequence (no spatial dimension) is channels
    /// only; 'batch-excluded' → everything but the batch; 'auto' → 'spatial-channel' (MATLAB's
    /// new default for every input kind, `C x T` sequences included).
    ///
    /// Files WITHOUT OperationDimension were saved before R2023a, whose layer normalization
    /// normalized over all dimensions but the batch (spatial, time and channel: MATLAB's
    /// documentation of those releases and its R2023a release note on the changed sequence
    /// default). So those files get 'batch-excluded', for sequences too
    /// **[UNVERIFIED against MATLAB]**: the `adamhrvth-conv1d` classifier (saved April 2023,
    /// without the property) is read this way. On images and features both rules agree.
    pub fn channel_only(&self, sequence: bool) -> bool {
        match self.operation_dimension.as_str() {
            "channel-only" => true,
            "spatial-channel" | "auto" => sequence,
            _ => false,
        }
    }

    pub(crate) fn describe(&self) -> String {
        let dims = if self.operation_dimension.is_empty() {
            "(no OperationDimension: over all but the batch)".to_string()
        } else {
            format!("OperationDimension '{}'", self.operation_dimension)
        };
        format!(
            "layer normalization with {} channels, {dims}",
            self.channels
        )
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        param_tensor(&mut self.scale)
            .into_iter()
            .chain(param_tensor(&mut self.offset))
            .collect()
    }

    pub(crate) fn learnables(&self) -> usize {
        param_numel(&self.scale) + param_numel(&self.offset)
    }

    pub(crate) fn is_trained(&self) -> bool {
        self.scale.is_some() && self.offset.is_some()
    }

    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        shape::check_channels(&mut self.channels, "NumChannels", x.c, ctx)?;
        Ok(Some(x))
    }
}

fn layer_norm(f: &Fields) -> Result<LayerNorm, NetError> {
    let scale_ref = f.param("Scale")?;
    let channels = f
        .opt_usize("NumChannels")?
        .or(scale_ref.as_ref().map(|p| p.value.numel()))
        .unwrap_or(0);
    let vector = |name: &str, p: Option<crate::net::fields::ParamRef>| match p {
        Some(p) => Ok(Some(p.with(
            layout::vector(p.value, channels).map_err(|e| f.layout_err(name, e))?,
        ))),
        None => Ok::<_, NetError>(None),
    };
    let operation_dimension = f.string("OperationDimension").unwrap_or_default();
    if !matches!(
        operation_dimension.as_str(),
        "" | "auto" | "channel-only" | "spatial-channel" | "batch-excluded"
    ) {
        return Err(f.err(
            "OperationDimension",
            "'auto', 'channel-only', 'spatial-channel' or 'batch-excluded'",
            format!("'{operation_dimension}'"),
        ));
    }
    Ok(LayerNorm {
        channels,
        epsilon: f.f64_or("Epsilon", 1e-5)?,
        operation_dimension,
        scale: vector("Scale", scale_ref)?,
        offset: vector("Offset", f.param("Offset")?)?,
    })
}
