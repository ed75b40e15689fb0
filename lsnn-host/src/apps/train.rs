//! `lsnn-host train store-recall|smnist`: a tutorial run, fresh or resumed, in its run folder.

use std::path::{Path, PathBuf};

use crate::error::HostError;
use crate::runs::Hooks;
use crate::tutorials::smnist::{SmnistFlags, SmnistSession};
use crate::tutorials::store_recall::{Session, StoreRecallFlags};

/// The tutorial to train.
#[derive(Debug, clap::Subcommand)]
pub enum TrainTask {
    /// The store-recall task of tutorial_storerecall_with_LSNN.py (all its flags, kebab case).
    #[command(args_override_self = true)]
    StoreRecall {
        #[command(flatten)]
        flags: Box<StoreRecallFlags>,
        /// Read flags from a TOML file (keys = flag names); flags given here override it.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Continue the run saved in DIR exactly (its flags; --n-iter may raise the total).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
    },
    /// Sequential MNIST of tutorial_sequential_mnist_with_LSNN.py (all its flags, kebab case).
    #[command(args_override_self = true)]
    Smnist {
        #[command(flatten)]
        flags: Box<SmnistFlags>,
        /// Read flags from a TOML file (keys = flag names); flags given here override it.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Continue the run saved in DIR exactly (its flags; --n-iter may raise the total,
        /// --data-dir must name the same data).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
    },
}

/// Trains `task` (resuming where asked; `explicit_n_iter`: `--n-iter` was given on the command
/// line, so a resumed run takes it), telling `announce` the run folder before training starts.
/// Returns the outcome as one JSON line.
pub fn train(
    task: TrainTask,
    explicit_n_iter: bool,
    announce: impl FnOnce(Option<&Path>),
) -> Result<String, HostError> {
    let json = match task {
        TrainTask::StoreRecall { flags, resume, .. } => {
            let mut session = match resume {
                Some(dir) => Session::resume(&dir, explicit_n_iter.then_some(flags.n_iter))?,
                None => Session::new(*flags)?,
            };
            announce(session.run_dir.as_deref());
            serde_json::to_string(&session.run(Hooks::default())?)
        }
        TrainTask::Smnist { flags, resume, .. } => {
            let mut session = match resume {
                Some(dir) => SmnistSession::resume(
                    &dir,
                    Some(&flags.data_dir),
                    explicit_n_iter.then_some(flags.n_iter),
                )?,
                None => SmnistSession::new(*flags)?,
            };
            announce(session.run_dir.as_deref());
            serde_json::to_string(&session.run(Hooks::default())?)
        }
    };
    Ok(json.unwrap_or_default())
}
