//! Placeholder until the v7.3 reader lands.
use super::error::{MatError, Result};
use super::value::{Value, Variable};
pub fn read_v73(_bytes: &[u8]) -> Result<(Vec<Variable>, Option<Vec<Value>>)> {
    Err(MatError::Hdf5("not yet implemented".into()))
}
