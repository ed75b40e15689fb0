//! The network of a tutorial run folder (its flags rebuild the shape, its checkpoint fills in
//! the arrays), or the sMNIST tutorial's network at iteration 0.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::smnist::SmnistFlags;
use super::store_recall::StoreRecallFlags;
use crate::error::HostError;
use crate::network::{Params, Spec, Weights};
use crate::runs::checkpoint::{
    checkpoint_error, load_run, read_flags, restore_network, CHECKPOINT_FILE,
};
use crate::tasks::smnist::SmnistEncoding;
use crate::tasks::store_recall::StoreRecallParams;

/// The task a network was trained for, with what is needed to make its inputs.
#[derive(Clone, Debug)]
pub enum NetworkTask {
    /// Store-recall with these task parameters.
    StoreRecall(StoreRecallParams),
    /// sMNIST with this encoding and data folder.
    Smnist(SmnistEncoding, PathBuf),
}

/// A network loaded from a run folder (or built at random).
#[derive(Clone, Debug)]
pub struct LoadedNetwork {
    /// Fixed part.
    pub spec: Spec<f32>,
    /// Trained arrays.
    pub params: Params<f32>,
    /// Its task.
    pub task: NetworkTask,
}

/// Loads the network of a `train store-recall` or `train smnist` run folder: the flags
/// rebuild the network's shape, the checkpoint fills in its arrays.
pub fn load_network(dir: &Path) -> Result<LoadedNetwork, HostError> {
    let (mut spec, mut weights, task) = match read_flags::<SmnistFlags>(dir) {
        Ok(flags) => {
            let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
            let spec = super::smnist::build_spec(&flags, &mut rng);
            let weights = super::smnist::init_weights(&flags, &mut rng)?;
            let task = NetworkTask::Smnist(flags.encoding(), flags.data_dir.clone());
            (spec, weights, task)
        }
        Err(_) => {
            let flags: StoreRecallFlags = read_flags(dir)?;
            flags.validate()?;
            let mut rng = ChaCha8Rng::seed_from_u64(flags.seed as u64);
            let spec = super::store_recall::build_spec(&flags, &mut rng);
            let weights = super::store_recall::init_weights(&flags, &mut rng)?;
            (spec, weights, NetworkTask::StoreRecall(flags.task()))
        }
    };
    let (ckpt, _progress) = load_run::<serde_json::Value>(dir)?;
    restore_network(&ckpt, &mut spec, &mut weights)
        .map_err(|m| checkpoint_error(&dir.join(CHECKPOINT_FILE), m))?;
    Ok(LoadedNetwork {
        spec,
        params: weights.params,
        task,
    })
}

/// The sMNIST tutorial's network at iteration 0 (its defaults, DEEP R initialisation with
/// Dale signs at 12 % connectivity for w_in, w_rec and w_out, b_out = 0), from `seed`.
pub fn random_smnist_network(seed: u64, data_dir: &Path) -> Result<LoadedNetwork, HostError> {
    let flags = SmnistFlags::defaults(data_dir);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = super::smnist::build_spec(&flags, &mut rng);
    let weights: Weights<f32> = super::smnist::init_weights(&flags, &mut rng)?;
    Ok(LoadedNetwork {
        spec,
        params: weights.params,
        task: NetworkTask::Smnist(flags.encoding(), data_dir.to_path_buf()),
    })
}
