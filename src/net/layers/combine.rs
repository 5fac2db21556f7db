//! Layers that combine several inputs: element-wise addition and multiplication, depth
//! concatenation and concatenation along a dimension.

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, Shape};
use crate::net::shape::{self, Declared};

use super::{Imported, Names};

pub const ADDITION: Names = Names {
    kind: "Addition",
    stem: "addition",
};
pub const MULTIPLICATION: Names = Names {
    kind: "Multiplication",
    stem: "multiplication",
};
pub const DEPTH_CONCAT: Names = Names {
    kind: "DepthConcat",
    stem: "depthcat",
};
pub const CONCAT: Names = Names {
    kind: "Concat",
    stem: "concat",
};

pub(crate) fn describe_addition(inputs: usize) -> String {
    format!("element-wise addition of {inputs} inputs")
}

pub(crate) fn describe_multiplication(inputs: usize) -> String {
    format!("element-wise multiplication of {inputs} inputs")
}

pub(crate) fn describe_depth_concat(inputs: usize) -> String {
    format!("depth concatenation of {inputs} inputs")
}

pub(crate) fn describe_concat(dim: usize, inputs: usize) -> String {
    format!("concatenation of {inputs} inputs along dimension {dim}")
}

/// Addition and multiplication: all inputs the same size.
pub(crate) fn elementwise_output(
    inputs: usize,
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    let Some(shapes) = shape::known_inputs(ins, inputs, ctx)? else {
        return Ok(None);
    };
    let x = shapes[0];
    if let Some(other) = shapes.iter().find(|s| (s.h, s.w, s.c) != (x.h, x.w, x.c)) {
        return Err(ctx.shape(
            "input sizes",
            format!("all equal to {x}"),
            other.to_string(),
        ));
    }
    Ok(Some(x))
}

/// Concatenation along MATLAB dimension `dim` (1 = H, 2 = W, 3 = C): the other sizes must agree.
pub(crate) fn concat_output(
    dim: usize,
    inputs: usize,
    ins: &[Option<Shape>],
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    let Some(shapes) = shape::known_inputs(ins, inputs, ctx)? else {
        return Ok(None);
    };
    let x = shapes[0];
    let key = |s: &Shape| match dim {
        1 => (s.w, s.c),
        2 => (s.h, s.c),
        _ => (s.h, s.w),
    };
    if let Some(other) = shapes.iter().find(|s| key(s) != key(&x)) {
        return Err(ctx.shape(
            format!("input sizes (concatenating along dimension {dim})"),
            format!("sizes matching {x} except along dimension {dim}"),
            other.to_string(),
        ));
    }
    let sum = |f: fn(&Shape) -> usize| shapes.iter().map(f).sum::<usize>();
    Ok(Some(match dim {
        1 => Shape {
            h: sum(|s| s.h),
            ..x
        },
        2 => Shape {
            w: sum(|s| s.w),
            ..x
        },
        _ => Shape {
            c: sum(|s| s.c),
            ..x
        },
    }))
}

/// Addition, multiplication and concatenation classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "AdditionLayer" => LayerKind::Addition {
            inputs: f.usize("NumInputs")?,
        },
        "MultiplicationLayer" => LayerKind::Multiplication {
            inputs: f.usize("NumInputs")?,
        },
        "DepthConcatenationLayer" => LayerKind::DepthConcat {
            inputs: f.usize("NumInputs")?,
        },
        "ConcatenationLayer" => {
            let dim = f.usize("Dim")?;
            if !(1..=3).contains(&dim) {
                return super::unsupported(format!("concatenation along dimension {dim}"));
            }
            LayerKind::Concat {
                dim,
                inputs: f.usize("NumInputs")?,
            }
        }
        _ => return Ok(None),
    }))
}

/// `dagnn.Sum` and `dagnn.Concat` with `inputs` input variables (DagNN only: SimpleNN layers
/// take one input).
pub(in crate::net) fn from_dagnn(ty: &str, f: &Fields, inputs: usize) -> Imported {
    Ok(Some(match ty {
        "Sum" => LayerKind::Addition { inputs },
        "Concat" => match f.opt_usize("dim")?.unwrap_or(3) {
            3 => LayerKind::DepthConcat { inputs },
            dim @ 1..=2 => LayerKind::Concat { dim, inputs },
            dim => LayerKind::Unsupported {
                reason: format!("concatenation along dimension {dim}"),
            },
        },
        _ => return Ok(None),
    }))
}
