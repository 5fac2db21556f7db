//! Errors of the MAT reader. Each names what was wrong and where: the byte offset (in the file,
//! or inside the inflated element it belongs to) and the variable being read.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MatError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a MAT file: {0}")]
    NotMat(String),
    #[error(
        "unsupported MAT file version 0x{0:04x} (expected 0x0100 for v5/v7 or 0x0200 for v7.3)"
    )]
    UnsupportedVersion(u16),
    #[error("truncated data at byte {offset}{}: needed {needed} bytes, {available} left", ctx(.context))]
    Truncated {
        offset: u64,
        needed: u64,
        available: u64,
        context: String,
    },
    #[error("malformed data at byte {offset}{}: {msg}", ctx(.context))]
    Malformed {
        offset: u64,
        msg: String,
        context: String,
    },
    #[error("cannot inflate compressed element at byte {offset}{}: {msg}", ctx(.context))]
    Inflate {
        offset: u64,
        msg: String,
        context: String,
    },
    #[error("nesting deeper than {limit} levels at byte {offset}{}", ctx(.context))]
    TooDeep {
        offset: u64,
        limit: usize,
        context: String,
    },
    #[error("{what} asks for {requested} bytes, more than the file's size allows ({limit}){}", ctx(.context))]
    TooLarge {
        what: String,
        requested: u64,
        limit: u64,
        context: String,
    },
    #[error("MATLAB object data (subsystem): {0}")]
    Mcos(String),
    #[error("HDF5 (v7.3) container: {0}")]
    Hdf5(String),
    #[error("no variable named '{name}' (variables: {available})")]
    NoSuchVariable { name: String, available: String },
}

fn ctx(c: &str) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(" (in {c})")
    }
}

impl MatError {
    /// Adds the variable (or path inside it) being read to the error's context.
    pub fn in_context(mut self, what: &str) -> Self {
        match &mut self {
            MatError::Truncated { context, .. }
            | MatError::Malformed { context, .. }
            | MatError::Inflate { context, .. }
            | MatError::TooDeep { context, .. }
            | MatError::TooLarge { context, .. } => {
                if context.is_empty() {
                    *context = what.to_string();
                } else {
                    *context = format!("{what}/{context}");
                }
            }
            MatError::Mcos(m) | MatError::Hdf5(m) => *m = format!("{what}: {m}"),
            _ => {}
        }
        self
    }
}

pub type Result<T> = std::result::Result<T, MatError>;
