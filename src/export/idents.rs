//! Layer identifiers for the generated Python and Rust code.

use crate::net::layer::Network;

/// Python keywords and builtins used by the generated code, names `nn.Module` defines, and Rust
/// keywords: no layer identifier may be one of them.
const RESERVED: &[&str] = &[
    // Python keywords and names the generated model.py uses
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "match",
    "case",
    "type",
    "x",
    "self",
    "torch",
    "nn",
    "F",
    "os",
    "float",
    "super",
    "input",
    "output",
    // nn.Module attributes
    "training",
    "forward",
    "eval",
    "train",
    "modules",
    "parameters",
    "buffers",
    "state_dict",
    "load_state_dict",
    "to",
    "cuda",
    "cpu",
    "double",
    "half",
    "apply",
    "children",
    "zero_grad",
    "register_buffer",
    "register_parameter",
    "add_module",
    "named_modules",
    "named_parameters",
    "named_buffers",
    "named_children",
    "get_submodule",
    "get_parameter",
    "get_buffer",
    "requires_grad_",
    "share_memory",
    "extra_repr",
    "dump_patches",
    "call_super_init",
    "bfloat16",
    "ipu",
    "xpu",
    "mtia",
    "to_empty",
    "compile",
    "register_module",
    // Rust keywords and names the generated model.rs uses
    "abstract",
    "become",
    "box",
    "const",
    "crate",
    "do",
    "dyn",
    "enum",
    "extern",
    "fn",
    "final",
    "gen",
    "impl",
    "let",
    "loop",
    "macro",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "static",
    "struct",
    "trait",
    "typeof",
    "union",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "Self",
    "new",
    "load",
    "device",
    "n",
    "Tensor",
    "Device",
    "Module",
];

/// Unique identifiers for the layers, valid in Python and Rust: the MATLAB name with every other
/// character replaced by `_`.
pub fn identifiers(net: &Network) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(net.layers.len());
    for l in &net.layers {
        let mut s: String = l
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
            s = format!("layer_{s}");
        }
        if s.chars().all(|c| c == '_') || s.starts_with("__") {
            s = format!("layer{s}");
        }
        if RESERVED.contains(&s.as_str()) {
            s.push('_');
        }
        let mut cand = s.clone();
        let mut k = 2;
        while !used.insert(cand.clone()) {
            cand = format!("{s}_{k}");
            k += 1;
        }
        out.push(cand);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::layer::{self, Layer, LayerKind};

    #[test]
    fn identifiers_are_unique_and_valid() {
        let mk = |name: &str| Layer {
            name: name.into(),
            class: "c".into(),
            kind: LayerKind::Softmax,
            inputs: vec![],
            output: None,
        };
        let net = Network {
            variable: "net".into(),
            source: layer::SourceKind::SeriesNetwork,
            layers: [
                "fire2-concat",
                "fire2_concat",
                "1conv",
                "input",
                "type",
                "",
                "a.b",
            ]
            .iter()
            .map(|n| mk(n))
            .collect(),
            outputs: vec![],
            classes: vec![],
            detector: None,
            notes: Vec::new(),
            same_padding: Vec::new(),
        };
        assert_eq!(
            identifiers(&net),
            vec![
                "fire2_concat",
                "fire2_concat_2",
                "layer_1conv",
                "input_",
                "type_",
                "layer_",
                "a_b"
            ]
        );
    }
}
