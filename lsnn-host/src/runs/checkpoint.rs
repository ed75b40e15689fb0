//! Checkpoints: one safetensors file holding the arrays, with the JSON training state in its
//! metadata, written atomically (temporary file, fsync, rename) so a crash or a stopped run
//! always leaves the last good checkpoint readable.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::HostError;
use crate::network::{Spec, Weights};
use crate::train::HostState;

const FORMAT: &str = "lsnn-rs-checkpoint/1";
const STATE_KEY: &str = "lsnn_state";

/// One stored array.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// 32-bit floats.
    F32(Vec<usize>, Vec<f32>),
    /// Bytes (delays).
    U8(Vec<usize>, Vec<u8>),
    /// 16-bit counters (refractory steps left).
    U16(Vec<usize>, Vec<u16>),
}

/// The arrays and the JSON state of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Named arrays.
    pub tensors: Vec<(String, Tensor)>,
    /// Everything else (optimiser, RNG, iteration, result lists), as JSON.
    pub state_json: String,
}

impl Checkpoint {
    /// Adds a 2-D float array.
    pub fn put_matrix(&mut self, name: &str, a: &Array2<f32>) {
        let data = a.as_standard_layout().iter().copied().collect();
        self.tensors
            .push((name.into(), Tensor::F32(vec![a.nrows(), a.ncols()], data)));
    }

    /// Adds a 1-D float array.
    pub fn put_vector(&mut self, name: &str, a: &[f32]) {
        self.tensors
            .push((name.into(), Tensor::F32(vec![a.len()], a.to_vec())));
    }

    /// Adds a 2-D byte array.
    pub fn put_bytes(&mut self, name: &str, a: &Array2<u8>) {
        let data = a.as_standard_layout().iter().copied().collect();
        self.tensors
            .push((name.into(), Tensor::U8(vec![a.nrows(), a.ncols()], data)));
    }

    /// Adds a batch of network states under `prefix` (v, z, b, i_future, refractory).
    pub fn put_states(&mut self, prefix: &str, states: &[HostState<f32>]) {
        let n_batch = states.len();
        let (n, d) = states.first().map_or((0, 0), |s| (s.n_rec(), s.n_delay()));
        let mut put = |key: &str, f: &dyn Fn(&HostState<f32>) -> Vec<f32>, width: usize| {
            let data = states.iter().flat_map(f).collect();
            self.tensors.push((
                format!("{prefix}.{key}"),
                Tensor::F32(vec![n_batch, width], data),
            ));
        };
        put("v", &|s| s.v().to_vec(), n);
        put("z", &|s| s.z().to_vec(), n);
        put("b", &|s| s.b().to_vec(), n);
        put(
            "i_future",
            &|s| {
                (0..n)
                    .flat_map(|j| (0..d).map(move |k| s.i_future(j, k)))
                    .collect()
            },
            n * d,
        );
        let refractory = states
            .iter()
            .flat_map(|s| s.refractory_left().to_vec())
            .collect();
        self.tensors.push((
            format!("{prefix}.refractory_left"),
            Tensor::U16(vec![n_batch, n], refractory),
        ));
    }

    fn get(&self, name: &str) -> Result<&Tensor, String> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("array `{name}` is missing"))
    }

    /// A stored float array with its shape.
    pub fn floats(&self, name: &str) -> Result<(&[usize], &[f32]), String> {
        match self.get(name)? {
            Tensor::F32(shape, data) => Ok((shape, data)),
            _ => Err(format!("array `{name}` is not float32")),
        }
    }

    /// A stored 2-D float array of the expected shape.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, String> {
        let (shape, data) = self.floats(name)?;
        if shape != [rows, cols] {
            return Err(format!(
                "array `{name}` has shape {shape:?}, expected [{rows}, {cols}]"
            ));
        }
        Ok(Array2::from_shape_vec((rows, cols), data.to_vec()).expect("shape checked"))
    }

    /// A stored 1-D float array of the expected length.
    pub fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, String> {
        let (shape, data) = self.floats(name)?;
        if shape != [len] {
            return Err(format!(
                "array `{name}` has shape {shape:?}, expected [{len}]"
            ));
        }
        Ok(Array1::from(data.to_vec()))
    }

    /// A stored 2-D byte array of the expected shape.
    pub fn bytes(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<u8>, String> {
        match self.get(name)? {
            Tensor::U8(shape, data) if shape == &[rows, cols] => {
                Ok(Array2::from_shape_vec((rows, cols), data.clone()).expect("shape checked"))
            }
            _ => Err(format!("array `{name}` must be uint8 [{rows}, {cols}]")),
        }
    }

    /// Restores a batch of states stored with [`Checkpoint::put_states`] into `states`.
    pub fn states_into(&self, prefix: &str, states: &mut [HostState<f32>]) -> Result<(), String> {
        let n_batch = states.len();
        let (n, d) = states.first().map_or((0, 0), |s| (s.n_rec(), s.n_delay()));
        let get = |key: &str, width: usize| -> Result<Vec<f32>, String> {
            let name = format!("{prefix}.{key}");
            let (shape, data) = self.floats(&name)?;
            if shape != [n_batch, width] {
                return Err(format!(
                    "array `{name}` has shape {shape:?}, expected [{n_batch}, {width}]"
                ));
            }
            Ok(data.to_vec())
        };
        let (v, z, b, i_future) = (
            get("v", n)?,
            get("z", n)?,
            get("b", n)?,
            get("i_future", n * d)?,
        );
        let name = format!("{prefix}.refractory_left");
        let refractory = match self.get(&name)? {
            Tensor::U16(shape, data) if shape == &[n_batch, n] => data,
            _ => return Err(format!("array `{name}` must be uint16 [{n_batch}, {n}]")),
        };
        for (e, s) in states.iter_mut().enumerate() {
            for j in 0..n {
                let at = e * n + j;
                s.set_neuron(
                    j,
                    lsnn_core::NeuronState {
                        v: v[at],
                        z: z[at],
                        b: b[at],
                    },
                );
                s.set_refractory_left(j, refractory[at]);
                for k in 0..d {
                    s.set_i_future(j, k, i_future[at * d + k]);
                }
            }
        }
        Ok(())
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), HostError> {
        let io = |source| HostError::Io {
            path: path.to_path_buf(),
            source,
        };
        let raw: Vec<(&String, Dtype, &[usize], Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, t)| match t {
                Tensor::F32(s, d) => (name, Dtype::F32, &s[..], le_bytes(d, |x| x.to_le_bytes())),
                Tensor::U8(s, d) => (name, Dtype::U8, &s[..], d.clone()),
                Tensor::U16(s, d) => (name, Dtype::U16, &s[..], le_bytes(d, |x| x.to_le_bytes())),
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = raw
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.to_vec(), bytes)
                    .map(|v| (name.to_string(), v))
                    .map_err(|e| checkpoint_error(path, format!("array {name}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            (STATE_KEY.to_string(), self.state_json.clone()),
        ]);
        let bytes = safetensors::serialize(views, &Some(metadata))
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        let tmp = tmp_path(path);
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a checkpoint; anything unreadable or inconsistent is a clear error.
    pub fn load(path: &Path) -> Result<Checkpoint, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |m: String| checkpoint_error(path, m);
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!("metadata `format` is not {FORMAT}")));
        }
        let state_json = meta
            .get(STATE_KEY)
            .cloned()
            .ok_or_else(|| bad(format!("metadata `{STATE_KEY}` is missing")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let t = match view.dtype() {
                Dtype::F32 => Tensor::F32(
                    shape,
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::U8 => Tensor::U8(shape, data.to_vec()),
                Dtype::U16 => Tensor::U16(
                    shape,
                    data.chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                ),
                other => {
                    return Err(bad(format!(
                        "array `{name}` has unsupported dtype {other:?}"
                    )))
                }
            };
            tensors.push((name, t));
        }
        Ok(Checkpoint {
            tensors,
            state_json,
        })
    }
}

/// The error for an unusable checkpoint file.
pub fn checkpoint_error(path: &Path, message: String) -> HostError {
    HostError::Checkpoint {
        path: path.to_path_buf(),
        message,
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn le_bytes<T: Copy, const K: usize>(data: &[T], f: impl Fn(T) -> [u8; K]) -> Vec<u8> {
    data.iter().flat_map(|&x| f(x)).collect()
}

/// Stores the network's fixed and trained arrays.
pub fn store_network(ckpt: &mut Checkpoint, spec: &Spec<f32>, weights: &Weights<f32>) {
    ckpt.put_vector("tau", &spec.tau);
    ckpt.put_vector("thr", &spec.thr);
    ckpt.put_vector("beta", &spec.beta);
    ckpt.put_bytes("delay_in", &spec.delay_in);
    ckpt.put_bytes("delay_rec", &spec.delay_rec);
    ckpt.put_matrix("w_in", &weights.params.w_in);
    ckpt.put_matrix("w_rec", &weights.params.w_rec);
    ckpt.put_matrix("w_out", &weights.params.w_out);
    if let Some(b) = &weights.params.b_out {
        ckpt.put_vector("b_out", b.as_slice().expect("standard"));
    }
    for m in &weights.rewired {
        ckpt.put_matrix(&format!("theta.{}", m.name), &m.theta);
        ckpt.put_matrix(&format!("sign.{}", m.name), &m.sign);
    }
}

/// Restores what [`store_network`] stored into a network of the same shape.
pub fn restore_network(
    ckpt: &Checkpoint,
    spec: &mut Spec<f32>,
    weights: &mut Weights<f32>,
) -> Result<(), String> {
    let (n_in, n) = (spec.n_in(), spec.n_rec());
    let n_out = weights.params.n_out();
    spec.tau = ckpt.vector("tau", n)?.to_vec();
    spec.thr = ckpt.vector("thr", n)?.to_vec();
    spec.beta = ckpt.vector("beta", n)?.to_vec();
    spec.delay_in = ckpt.bytes("delay_in", n_in, n)?;
    spec.delay_rec = ckpt.bytes("delay_rec", n, n)?;
    if spec
        .delay_in
        .iter()
        .chain(spec.delay_rec.iter())
        .any(|&d| usize::from(d) >= spec.config.n_delay)
    {
        return Err("a delay index is >= n_delay".into());
    }
    weights.params.w_in = ckpt.matrix("w_in", n_in, n)?;
    weights.params.w_rec = ckpt.matrix("w_rec", n, n)?;
    weights.params.w_out = ckpt.matrix("w_out", n, n_out)?;
    if weights.params.b_out.is_some() {
        weights.params.b_out = Some(ckpt.vector("b_out", n_out)?);
    }
    for m in &mut weights.rewired {
        let (r, c) = m.theta.dim();
        m.theta = ckpt.matrix(&format!("theta.{}", m.name), r, c)?;
        m.sign = ckpt.matrix(&format!("sign.{}", m.name), r, c)?;
    }
    let finite = weights
        .params
        .named()
        .iter()
        .all(|(_, a)| a.iter().all(|x| x.is_finite()));
    if !finite {
        return Err("a weight is NaN or infinite".into());
    }
    Ok(())
}

/// The checkpoint's file name in a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// The flags a run folder recorded (`flags.json`).
pub fn read_flags<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T, HostError> {
    let path = dir.join("flags.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HostError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| HostError::Json {
        path,
        message: e.to_string(),
    })
}

/// A run folder's checkpoint and its decoded training state.
pub fn load_run<P: serde::de::DeserializeOwned>(dir: &Path) -> Result<(Checkpoint, P), HostError> {
    let path = dir.join(CHECKPOINT_FILE);
    let ckpt = Checkpoint::load(&path)?;
    let progress = serde_json::from_str(&ckpt.state_json)
        .map_err(|e| checkpoint_error(&path, format!("training state: {e}")))?;
    Ok((ckpt, progress))
}

/// Writes the network, the training state and any `extra` arrays to the run folder.
pub fn save_run<P: serde::Serialize>(
    dir: &Path,
    spec: &Spec<f32>,
    weights: &Weights<f32>,
    progress: &P,
    extra: impl FnOnce(&mut Checkpoint),
) -> Result<(), HostError> {
    let path = dir.join(CHECKPOINT_FILE);
    let mut ckpt = Checkpoint::default();
    store_network(&mut ckpt, spec, weights);
    extra(&mut ckpt);
    ckpt.state_json = serde_json::to_string(progress)
        .map_err(|e| checkpoint_error(&path, format!("training state: {e}")))?;
    ckpt.save(&path)
}
