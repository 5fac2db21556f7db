//! Errors of the network importer. Each names where the problem is: the variable, the layer
//! (name and MATLAB class) and the property, with what was expected and what was found.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetError {
    /// No variable of the file holds a network.
    #[error("no network found among the variables ({})", list(.variables))]
    NoNetwork { variables: Vec<String> },

    /// Several variables hold networks and none was chosen.
    #[error("the file holds several networks: {}; choose one with --var", list(.candidates))]
    SeveralNetworks { candidates: Vec<String> },

    /// The chosen variable (or property path) does not exist.
    #[error("no variable '{variable}' in the file (variables: {})", list(.available))]
    NoSuchVariable {
        variable: String,
        available: Vec<String>,
    },

    /// The chosen variable holds something that is not a network.
    #[error("variable '{variable}' is a {class}, not a network")]
    NotANetwork { variable: String, class: String },

    /// A stored property is missing or has the wrong type, size or value.
    #[error("{at}, property '{property}': expected {expected}, found {found}")]
    Property {
        at: Box<Ctx>,
        property: String,
        expected: String,
        found: String,
    },

    /// Shape inference disagrees with what the file declares, or the layer cannot take its input.
    #[error("{at}: {what}: expected {expected}, found {found}")]
    Shape {
        at: Box<Ctx>,
        what: String,
        expected: String,
        found: String,
    },

    /// The layer graph is malformed: an unknown layer in a connection, a cycle, a port used twice.
    #[error("variable '{variable}', {container} graph: {message}")]
    Graph {
        variable: String,
        container: String,
        message: String,
    },

    /// Moving the weights out of the decoded file failed (an internal inconsistency).
    #[error("variable '{variable}': taking the weights from the file: {message}")]
    Weights { variable: String, message: String },

    /// A `--var` path that cannot be parsed.
    #[error(
        "'{path}' is not a path to a network ({message}); write it as var.prop, var(2).field or var{{3}}"
    )]
    BadPath { path: String, message: String },

    /// A `--var` path naming a part that does not exist.
    #[error("nothing at '{path}': '{at}' ({class}) has {}; networks in the file: {}", list_or(.available, "no parts"), list(.networks))]
    NoSuchPath {
        path: String,
        /// The longest part of the path that exists.
        at: String,
        class: String,
        available: Vec<String>,
        networks: Vec<String>,
    },

    /// A `--var` path naming a value that neither is nor holds a network.
    #[error("'{path}' is a {class} and holds no network; networks in the file: {}", list(.networks))]
    NoNetworkAt {
        path: String,
        class: String,
        networks: Vec<String>,
    },
}

fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.into()
    } else {
        items.join(", ")
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Where a layer sits: the variable, the layer's name and its MATLAB class. Enough to build
/// errors that name it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ctx {
    pub variable: String,
    pub layer: String,
    pub class: String,
}

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "variable '{}', layer '{}' ({})",
            self.variable, self.layer, self.class
        )
    }
}

impl Ctx {
    pub fn new(variable: &str, layer: &str, class: &str) -> Self {
        Ctx {
            variable: variable.into(),
            layer: layer.into(),
            class: class.into(),
        }
    }

    pub fn property(
        &self,
        property: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> NetError {
        NetError::Property {
            at: Box::new(self.clone()),
            property: property.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub fn shape(
        &self,
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> NetError {
        NetError::Shape {
            at: Box::new(self.clone()),
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_variable_layer_class_property() {
        let e = Ctx::new("net", "conv_1", "nnet.cnn.layer.Convolution2DLayer")
            .property("Weights", "3x3x1x16", "3x3x2x16");
        let s = e.to_string();
        for part in [
            "'net'",
            "'conv_1'",
            "Convolution2DLayer",
            "'Weights'",
            "3x3x1x16",
            "3x3x2x16",
        ] {
            assert!(s.contains(part), "{s}");
        }
        let e = NetError::SeveralNetworks {
            candidates: vec!["a (SeriesNetwork)".into(), "b (dlnetwork)".into()],
        };
        assert!(e.to_string().contains("--var"));
    }
}
