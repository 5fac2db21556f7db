//! Input and output layers: image, feature and sequence inputs (with their input normalization),
//! classification and regression outputs.

use serde::{Deserialize, Serialize};

use crate::mat::value::{StructArray, Value};
use crate::net::error::{Ctx, NetError};
use crate::net::fields::{self, Fields};
use crate::net::layer::{LayerKind, Shape, Tensor};
use crate::net::layout;
use crate::net::matconvnet::Params;
use crate::net::shape::{self, Declared};

use super::{Imported, Names, unsupported};

/// Input normalization of an input layer, with its stored statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Normalization {
    None,
    /// `x - mean`.
    ZeroCenter {
        mean: Tensor,
    },
    /// `(x - mean) / std`.
    ZScore {
        mean: Tensor,
        std: Tensor,
    },
    /// `2 (x - min) / (max - min) - 1`.
    RescaleSymmetric {
        min: Tensor,
        max: Tensor,
    },
    /// `(x - min) / (max - min)`.
    RescaleZeroOne {
        min: Tensor,
        max: Tensor,
    },
}

impl Normalization {
    /// MATLAB's name: `none`, `zerocenter`, `zscore`, `rescale-symmetric`, `rescale-zero-one`.
    pub fn name(&self) -> &'static str {
        match self {
            Normalization::None => "none",
            Normalization::ZeroCenter { .. } => "zerocenter",
            Normalization::ZScore { .. } => "zscore",
            Normalization::RescaleSymmetric { .. } => "rescale-symmetric",
            Normalization::RescaleZeroOne { .. } => "rescale-zero-one",
        }
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        match self {
            Normalization::None => vec![],
            Normalization::ZeroCenter { mean } => vec![mean],
            Normalization::ZScore { mean, std } => vec![mean, std],
            Normalization::RescaleSymmetric { min, max }
            | Normalization::RescaleZeroOne { min, max } => vec![min, max],
        }
    }

    /// Whether the statistics are stored (an untrained input layer has empty ones).
    pub(crate) fn is_trained(&self) -> bool {
        match self {
            Normalization::None => true,
            Normalization::ZeroCenter { mean } => mean.numel() > 0,
            Normalization::ZScore { mean, std } => mean.numel() > 0 && std.numel() > 0,
            Normalization::RescaleSymmetric { min, max }
            | Normalization::RescaleZeroOne { min, max } => min.numel() > 0 && max.numel() > 0,
        }
    }

    /// ` (statistics 1x1x3)` or ` (statistics not computed yet)` (empty without normalization).
    fn statistics_text(&self) -> String {
        match self {
            Normalization::None => String::new(),
            Normalization::ZeroCenter { mean: t }
            | Normalization::ZScore { mean: t, .. }
            | Normalization::RescaleSymmetric { min: t, .. }
            | Normalization::RescaleZeroOne { min: t, .. } => {
                if t.numel() == 0 {
                    " (statistics not computed yet)".into()
                } else {
                    format!(
                        " (statistics {})",
                        t.shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("x")
                    )
                }
            }
        }
    }
}

pub const IMAGE_INPUT: Names = Names {
    kind: "ImageInput",
    stem: "imageinput",
};
pub const FEATURE_INPUT: Names = Names {
    kind: "FeatureInput",
    stem: "featureinput",
};
pub const SEQUENCE_INPUT: Names = Names {
    kind: "SequenceInput",
    stem: "sequenceinput",
};
pub const CLASSIFICATION_OUTPUT: Names = Names {
    kind: "ClassificationOutput",
    stem: "classoutput",
};
pub const REGRESSION_OUTPUT: Names = Names {
    kind: "RegressionOutput",
    stem: "regressionoutput",
};

// inspect text.

fn with_normalization(base: String, n: &Normalization) -> String {
    match n {
        Normalization::None => base,
        other => format!("{base} with '{}' normalization", other.name()),
    }
}

pub(crate) fn describe_image_input(size: &Shape, n: &Normalization) -> String {
    with_normalization(format!("{} images", shape::describe(&Some(*size))), n)
}

pub(crate) fn describe_feature_input(size: usize, n: &Normalization) -> String {
    with_normalization(format!("{size} features"), n)
}

pub(crate) fn describe_sequence_input(size: usize, n: &Normalization) -> String {
    with_normalization(format!("sequence input with {size} dimensions"), n)
}

pub(crate) fn describe_classification(classes: &[String]) -> String {
    match classes {
        [] => "classification output".into(),
        [one] => format!("crossentropyex with '{one}'"),
        [first, rest @ ..] => format!(
            "crossentropyex with '{first}' and {} other class{}",
            rest.len(),
            if rest.len() == 1 { "" } else { "es" }
        ),
    }
}

/// What `inspect` says of the network's input after its name: `28x28x1, normalization
/// zerocenter (statistics 1x1x1)`; `None` for a layer that is not an input layer.
pub fn input_summary(kind: &LayerKind) -> Option<String> {
    let (size, norm) = match kind {
        LayerKind::ImageInput {
            size,
            normalization,
        } => (shape::describe(&Some(*size)), normalization),
        LayerKind::FeatureInput {
            size,
            normalization,
        } => (format!("{size} features"), normalization),
        LayerKind::SequenceInput {
            size,
            normalization,
            frame: None,
        } => (format!("sequences of {size} features"), normalization),
        LayerKind::SequenceInput {
            normalization,
            frame: Some(frame),
            ..
        } => (
            format!("sequences of {} images", shape::describe(&Some(*frame))),
            normalization,
        ),
        _ => return None,
    };
    Some(format!(
        "{size}, normalization {}{}",
        norm.name(),
        norm.statistics_text()
    ))
}

// Shape inference.

/// The input must have one channel per class (when the classes are stored).
pub(crate) fn classification_output(
    classes: &[String],
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    let Some(x) = shape::one_input(ins, ctx)? else {
        return Ok(None);
    };
    if !classes.is_empty() && classes.len() != x.c {
        return Err(ctx.shape(
            "number of classes",
            format!("{} (the input's channels)", x.c),
            classes.len().to_string(),
        ));
    }
    Ok(Some(x))
}

// Deep Learning Toolbox import.

/// Input and output layer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    use LayerKind as K;
    Ok(Some(match short {
        "ImageInputLayer" => {
            let size = f.opt_counts("InputSize")?.unwrap_or_default();
            let [h, w, c] = match size.as_slice() {
                [h, w] => [*h, *w, 1],
                [h, w, c] => [*h, *w, *c],
                _ => {
                    return Err(f.err(
                        "InputSize",
                        "[height width channels]",
                        f.get("InputSize").map(fields::describe).unwrap_or_default(),
                    ));
                }
            };
            match normalization(f, [h, w, c])? {
                Ok(normalization) => K::ImageInput {
                    size: Shape::image(h, w, c),
                    normalization,
                },
                Err(reason) => return unsupported(reason),
            }
        }
        "FeatureInputLayer" | "SequenceInputLayer" => {
            let size = f.opt_counts("InputSize")?.unwrap_or_default();
            let (n, frame) = match size.as_slice() {
                [n] => (*n, None),
                // Image sequences: InputSize [h w c] (or [h w], one channel).
                [h, w] if short == "SequenceInputLayer" => (h * w, Some(Shape::image(*h, *w, 1))),
                [h, w, c] if short == "SequenceInputLayer" => {
                    (h * w * c, Some(Shape::image(*h, *w, *c)))
                }
                _ => {
                    return unsupported(format!(
                        "{short} with input size {size:?} is not supported"
                    ));
                }
            };
            let hwc = frame.map_or([1, 1, n], |s| [s.h, s.w, s.c]);
            match normalization(f, hwc)? {
                Ok(normalization) if short == "FeatureInputLayer" => K::FeatureInput {
                    size: n,
                    normalization,
                },
                Ok(normalization) => K::SequenceInput {
                    size: n,
                    normalization,
                    frame,
                },
                Err(reason) => return unsupported(reason),
            }
        }
        "ClassificationOutputLayer"
        | "PixelClassificationLayer"
        | "DicePixelClassificationLayer" => {
            let classes = ["Categories", "Classes", "ClassNames"]
                .iter()
                .find_map(|n| f.get(n))
                .map(class_names)
                .unwrap_or_default();
            K::ClassificationOutput { classes }
        }
        "RegressionOutputLayer" => K::RegressionOutput,
        _ => return Ok(None),
    }))
}

/// Class names: a categorical (its categories, in order), a cellstr or a string array.
pub fn class_names(v: &Value) -> Vec<String> {
    match v {
        Value::Categorical(c) => c.categories.clone(),
        other if other.is_empty() => vec![],
        // 'auto' in untrained output layers: the classes come from the training data.
        other if other.as_string().as_deref() == Some("auto") => vec![],
        other => other.as_string_list().unwrap_or_default(),
    }
}

/// Input normalization of an input layer whose data is `[H, W, C]`, or the reason it cannot be
/// converted. Stored as a struct `{Type, AverageImage, ...}` (versions seen), `[]` for none, or as
/// text with the statistics in the layer's own `Mean`/`StandardDeviation`/`Min`/`Max`.
fn normalization(f: &Fields, hwc: [usize; 3]) -> Result<Result<Normalization, String>, NetError> {
    let v = f.get("Normalization");
    let (ty, stats): (String, Option<&StructArray>) = match v {
        None => return Ok(Ok(Normalization::None)),
        Some(v) if v.is_empty() => return Ok(Ok(Normalization::None)),
        Some(Value::Struct(s)) if s.len() == 1 => (
            s.field("Type")
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Some(s),
        ),
        Some(Value::Char(_)) | Some(Value::String(_)) => {
            (v.and_then(|v| v.as_string()).unwrap_or_default(), None)
        }
        Some(Value::FunctionHandle(_)) => {
            return Ok(Err(
                "custom normalization function cannot be converted".into()
            ));
        }
        Some(other) => {
            return Err(f.err(
                "Normalization",
                "a struct, text or []",
                fields::describe(other),
            ));
        }
    };
    let stat = |names: &[&str]| -> Result<Tensor, NetError> {
        for name in names {
            let v = stats.and_then(|s| s.field(name)).or_else(|| f.get(name));
            let Some(v) = v else { continue };
            if v.is_empty() {
                return Ok(Tensor::new(vec![0], vec![]));
            }
            let prop = format!("Normalization.{name}");
            let a = v
                .as_numeric()
                .ok_or_else(|| f.err(&prop, "a numeric array", fields::describe(v)))?;
            return layout::input_statistic(a, hwc).map_err(|e| f.layout_err(&prop, e));
        }
        // Not stored: an untrained input layer, statistics computed when training starts.
        Ok(Tensor::new(vec![0], vec![]))
    };
    Ok(Ok(match ty.to_ascii_lowercase().as_str() {
        "" | "none" => Normalization::None,
        "zerocenter" => Normalization::ZeroCenter {
            mean: stat(&["AverageImage", "Mean"])?,
        },
        "zscore" => Normalization::ZScore {
            mean: stat(&["AverageImage", "Mean"])?,
            std: stat(&["StandardDeviation", "Std"])?,
        },
        "rescale-symmetric" => Normalization::RescaleSymmetric {
            min: stat(&["Min"])?,
            max: stat(&["Max"])?,
        },
        "rescale-zero-one" => Normalization::RescaleZeroOne {
            min: stat(&["Min"])?,
            max: stat(&["Max"])?,
        },
        other => {
            return Ok(Err(format!(
                "input normalization '{other}' cannot be converted"
            )));
        }
    }))
}

// MatConvNet import.

/// Loss layers: output layers.
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    _params: &Params,
    _declared: &mut Declared,
) -> Imported {
    use LayerKind as K;
    Ok(Some(match ty {
        "softmaxloss" => K::ClassificationOutput { classes: vec![] },
        "loss" | "Loss" => match f.string("loss").as_deref() {
            None | Some("softmaxlog") | Some("log") | Some("classerror") | Some("topkerror")
            | Some("mhinge") | Some("mshinge") => K::ClassificationOutput { classes: vec![] },
            _ => K::RegressionOutput,
        },
        _ => return Ok(None),
    }))
}
