//! Training data: a folder with one sub-folder per class (MATLAB's imageDatastore with
//! folder-name labels), or a `.mat` holding `X` (H x W x C x N) and `Y` (categorical or numeric).

use super::{Rng, TrainError};
use crate::data;
use crate::mat::{MatFile, Value, permute_col_major};
use burn::prelude::*;
use std::path::Path;

/// Observations as a row-major `[N, C, H, W]` buffer with class indices.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    pub classes: Vec<String>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
}

/// Random augmentation applied to each training image.
#[derive(Debug, Clone, Copy, Default)]
pub struct Augment {
    pub flip: bool,
    pub translate: usize,
}

fn setup(msg: String) -> TrainError {
    TrainError::Setup(msg)
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Reads `dir/<class>/<image>` for every class folder (sorted by name), through the same
    /// loading, channel conversion and resizing as `infer`.
    pub fn from_folder(dir: &Path, h: usize, w: usize, c: usize) -> Result<Dataset, TrainError> {
        let rd = std::fs::read_dir(dir).map_err(|e| TrainError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let mut class_dirs: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(setup(format!(
                "{}: no class sub-folders (expected one folder of images per class)",
                dir.display()
            )));
        }
        let mut ds = Dataset {
            x: vec![],
            y: vec![],
            classes: vec![],
            shape: [c, h, w],
        };
        for (k, cd) in class_dirs.iter().enumerate() {
            ds.classes.push(
                cd.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("?")
                    .to_string(),
            );
            let files =
                data::expand_inputs(std::slice::from_ref(cd)).map_err(|e| setup(e.to_string()))?;
            for f in files {
                ds.x.extend(data::load_image(&f, h, w, c).map_err(|e| setup(e.to_string()))?);
                ds.y.push(k);
            }
        }
        if ds.is_empty() {
            return Err(setup(format!(
                "{}: no images in the class folders",
                dir.display()
            )));
        }
        Ok(ds)
    }

    /// Reads `X` (H x W x C x N, as MATLAB stores images) and `Y` (categorical, cellstr or
    /// numeric labels) from a `.mat` file.
    pub fn from_mat(path: &Path, h: usize, w: usize, c: usize) -> Result<Dataset, TrainError> {
        let m = MatFile::read_vars(path, &["X", "Y"])
            .map_err(|e| setup(format!("{}: {e}", path.display())))?;
        let x = m
            .get("X")
            .map_err(|e| setup(format!("{}: {e}", path.display())))?;
        let a = x.as_numeric().ok_or_else(|| {
            setup(format!(
                "{}: X is {}, expected a numeric array",
                path.display(),
                x.class_name()
            ))
        })?;
        let d = &a.dims;
        if d.len() < 3 && c != 1
            || d[0] != h
            || d.get(1) != Some(&w)
            || d.get(2).copied().unwrap_or(1) != c
        {
            return Err(setup(format!(
                "{}: X is {}, expected {h}x{w}x{c}xN",
                path.display(),
                crate::dump::size_str(d)
            )));
        }
        let n = d.get(3).copied().unwrap_or(1);
        let (xs, _) = permute_col_major(&a.real.to_f32_vec(), d, &[3, 2, 0, 1]).map_err(setup)?;
        let y_value = m
            .get("Y")
            .map_err(|e| setup(format!("{}: {e}", path.display())))?;
        let (y, classes) = labels(y_value, path, "Y")?;
        if y.len() != n {
            return Err(setup(format!(
                "{}: X has {n} observations, Y {} labels",
                path.display(),
                y.len()
            )));
        }
        Ok(Dataset {
            x: xs,
            y,
            classes,
            shape: [c, h, w],
        })
    }
}

/// Class indices and class names from stored labels (categorical, cellstr or numeric), as
/// variable `var` of `path` (named in errors).
pub(crate) fn labels(
    value: &Value,
    path: &Path,
    var: &str,
) -> Result<(Vec<usize>, Vec<String>), TrainError> {
    {
        let (y, classes) = match value {
            Value::Categorical(cat) => {
                if cat.codes.contains(&0) {
                    return Err(setup(format!(
                        "{}: {var} has <undefined> labels",
                        path.display()
                    )));
                }
                (
                    cat.codes.iter().map(|&k| k as usize - 1).collect(),
                    cat.categories.clone(),
                )
            }
            v => {
                if let Some(list) = v.as_string_list() {
                    let mut classes: Vec<String> = list.clone();
                    classes.sort();
                    classes.dedup();
                    (
                        list.iter()
                            .map(|s| classes.iter().position(|c| c == s).unwrap_or(0))
                            .collect(),
                        classes,
                    )
                } else if let Some(vals) = v.to_f64_vec() {
                    let mut uniq: Vec<i64> = vals.iter().map(|x| *x as i64).collect();
                    uniq.sort();
                    uniq.dedup();
                    let y: Vec<usize> = vals
                        .iter()
                        .map(|x| uniq.iter().position(|u| *u == *x as i64).unwrap_or(0))
                        .collect();
                    (y, uniq.iter().map(|u| u.to_string()).collect())
                } else {
                    return Err(setup(format!(
                        "{}: {var} is {}, expected categorical, cellstr or numeric labels",
                        path.display(),
                        v.class_name()
                    )));
                }
            }
        };
        Ok((y, classes))
    }
}

impl Dataset {
    /// Reorders class indices to follow `classes` (the network's order); classes the data set
    /// lacks are fine, labels the network lacks are an error.
    pub fn align_classes(&mut self, classes: &[String]) -> Result<(), TrainError> {
        let map: Vec<usize> = self
            .classes
            .iter()
            .map(|c| {
                classes.iter().position(|n| n == c).ok_or_else(|| {
                    setup(format!(
                        "class '{c}' of the data is not one of the network's classes"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        self.y.iter_mut().for_each(|y| *y = map[*y]);
        self.classes = classes.to_vec();
        Ok(())
    }

    /// Splits off a random `fraction` of the observations (stratified per class) as a
    /// validation set.
    pub fn split(self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let per = self.shape.iter().product::<usize>();
        let mut rng = Rng::new(seed.wrapping_add(0x5eed));
        let mut val_idx = vec![];
        let mut train_idx = vec![];
        for k in 0..self.classes.len() {
            let mut idx: Vec<usize> = (0..self.len()).filter(|&i| self.y[i] == k).collect();
            rng.shuffle(&mut idx);
            let nv = (idx.len() as f64 * fraction).round() as usize;
            val_idx.extend_from_slice(&idx[..nv]);
            train_idx.extend_from_slice(&idx[nv..]);
        }
        val_idx.sort();
        train_idx.sort();
        let take = |idx: &[usize]| Dataset {
            x: idx
                .iter()
                .flat_map(|&i| self.x[i * per..(i + 1) * per].iter().copied())
                .collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes.clone(),
            shape: self.shape,
        };
        (take(&train_idx), take(&val_idx))
    }

    /// The observations `idx` as a tensor with their labels, augmented when asked.
    pub fn batch(
        &self,
        idx: &[usize],
        device: &Device,
        aug: Option<(&Augment, &mut Rng)>,
    ) -> (Tensor<4>, Vec<usize>) {
        let [c, h, w] = self.shape;
        let per = c * h * w;
        let mut buf = Vec::with_capacity(idx.len() * per);
        let mut aug = aug;
        for &i in idx {
            let img = &self.x[i * per..(i + 1) * per];
            match aug.as_mut() {
                Some((a, rng)) if a.flip || a.translate > 0 => {
                    let flip = a.flip && rng.below(2) == 1;
                    let t = a.translate as i64;
                    let (dy, dx) = if t > 0 {
                        (
                            rng.below(2 * t as usize + 1) as i64 - t,
                            rng.below(2 * t as usize + 1) as i64 - t,
                        )
                    } else {
                        (0, 0)
                    };
                    for ch in 0..c {
                        for y in 0..h as i64 {
                            for x in 0..w as i64 {
                                let sx = if flip { w as i64 - 1 - x } else { x } - dx;
                                let sy = y - dy;
                                let v = if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                                    img[ch * h * w + sy as usize * w + sx as usize]
                                } else {
                                    0.0
                                };
                                buf.push(v);
                            }
                        }
                    }
                }
                _ => buf.extend_from_slice(img),
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(buf, [idx.len(), c, h, w]), device);
        (x, idx.iter().map(|&i| self.y[i]).collect())
    }
}
