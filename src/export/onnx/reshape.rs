//! Flatten. (Dropout computes nothing; resize is not exported.)

use super::graph::{Ctx, Graph, a_int, a_ints};
use crate::export::ExportError;

pub(super) fn flatten(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    // MATLAB flattens H x W x C column-major (h fastest) = NCWH row-major.
    let x = cx.arg(g, 0, true);
    let t = format!("{name}/nchw_to_ncwh");
    g.node(
        "Transpose",
        &format!("{name}/transpose"),
        &[&x],
        &t,
        vec![a_ints("perm", &[0, 1, 3, 2])],
    );
    g.node("Flatten", name, &[&t], out, vec![a_int("axis", 1)]);
    Ok(())
}
