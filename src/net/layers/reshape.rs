//! Layers that reshape or pass their input on: flatten, 2-D resize, dropout (the identity at
//! inference), and the folding/unfolding of image sequences (CNN-LSTM networks).

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, Shape};
use crate::net::matconvnet::Params;
use crate::net::shape::{self, Declared};

use crate::net::layer::Normalization;

use super::{Imported, Names, number, pair_text, unsupported};

pub const DROPOUT: Names = Names {
    kind: "Dropout",
    stem: "dropout",
};
pub const FLATTEN: Names = Names {
    kind: "Flatten",
    stem: "flatten",
};
pub const RESIZE_2D: Names = Names {
    kind: "Resize2d",
    stem: "resize",
};

pub(crate) fn describe_dropout(probability: f64) -> String {
    format!("{}% dropout", number(probability * 100.0))
}

pub(crate) fn describe_resize(
    scale: &Option<[f64; 2]>,
    output_size: &Option<[usize; 2]>,
    method: &str,
) -> String {
    match (output_size, scale) {
        (Some(o), _) => format!("resize to {} ({method})", pair_text(*o)),
        (None, Some(s)) => format!("resize by [{} {}] ({method})", number(s[0]), number(s[1])),
        (None, None) => format!("resize ({method})"),
    }
}

/// Flatten: all elements as features.
pub(crate) fn flatten_output(ins: &[Option<Shape>], ctx: &Ctx) -> Result<Option<Shape>, NetError> {
    Ok(shape::one_input(ins, ctx)?.map(|x| Shape::features(x.numel())))
}

/// Resize to `output_size`, or by `scale` (floor); unknown without either.
pub(crate) fn resize_output(
    scale: &Option<[f64; 2]>,
    output_size: &Option<[usize; 2]>,
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    let Some(x) = shape::one_input(ins, ctx)? else {
        return Ok(None);
    };
    Ok(match (output_size, scale) {
        (Some([h, w]), _) => Some(Shape::image(*h, *w, x.c)),
        (None, Some([sh, sw])) => Some(Shape::image(
            (x.h as f64 * *sh).floor() as usize,
            (x.w as f64 * *sw).floor() as usize,
            x.c,
        )),
        (None, None) => None,
    })
}

/// Dropout, flatten and resize classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "DropoutLayer" => LayerKind::Dropout {
            probability: f.f64_or("Probability", 0.5)?,
        },
        "FlattenLayer" => LayerKind::Flatten,
        "SequenceFoldingLayer" => LayerKind::SequenceFolding,
        "SequenceUnfoldingLayer" => LayerKind::SequenceUnfolding,
        "Resize2DLayer" => {
            if f.flag("EnableReferenceInput") == Some(true) {
                return unsupported("Resize2DLayer with a reference input".into());
            }
            let scale = match f
                .get("Scale")
                .and_then(|v| v.to_f64_vec())
                .unwrap_or_default()
                .as_slice()
            {
                [s] => Some([*s, *s]),
                [a, b] => Some([*a, *b]),
                _ => None,
            };
            LayerKind::Resize2d {
                scale,
                output_size: f.opt_pair("OutputSize")?,
                method: f.string("Method").unwrap_or_else(|| "nearest".into()),
                transform: f
                    .string("GeometricTransformMode")
                    .unwrap_or_else(|| "half-pixel".into()),
            }
        }
        _ => return Ok(None),
    }))
}

/// `dropout`/`dagnn.DropOut`.
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    _params: &Params,
    _declared: &mut Declared,
) -> Imported {
    Ok(Some(match ty {
        "dropout" | "DropOut" => LayerKind::Dropout {
            probability: f.f64_or("rate", 0.5)?,
        },
        _ => return Ok(None),
    }))
}

// Image sequences (CNN-LSTM): sequenceFoldingLayer, sequenceUnfoldingLayer.
//
// The shape of a sequence layer is its shape per time step, so an image-sequence input has the
// frame's `H x W x C` shape, folding keeps it (each time step becomes one image), and unfolding
// takes its data input's. At run time image sequences are `[N, C*H*W, 1, T]` (features of a frame
// in `[C, H, W]` row-major order) and folded ones `[N*T, C, H, W]` (observation-major: row
// `n*T + t`); see `model::ops::reshape`.

pub const SEQUENCE_FOLDING: Names = Names {
    kind: "SequenceFolding",
    stem: "seqfold",
};
pub const SEQUENCE_UNFOLDING: Names = Names {
    kind: "SequenceUnfolding",
    stem: "sequnfold",
};

pub(crate) fn describe_folding() -> String {
    "sequence folding (one image per time step)".into()
}

pub(crate) fn describe_unfolding() -> String {
    "sequence unfolding (images back to sequences)".into()
}

pub(crate) fn describe_image_sequence_input(frame: &Shape, n: &Normalization) -> String {
    let base = format!("sequences of {} images", shape::describe(&Some(*frame)));
    match n {
        Normalization::None => base,
        other => format!("{base} with '{}' normalization", other.name()),
    }
}

/// Unfolding: inputs `in` (the folded data) and `miniBatchSize` (from the folding layer); the
/// output has the data's shape per time step.
pub(crate) fn unfolding_output(
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    if ins.len() != 2 {
        return Err(ctx.shape(
            "number of inputs",
            "2 (in, miniBatchSize)".to_string(),
            ins.len().to_string(),
        ));
    }
    Ok(ins[0])
}
