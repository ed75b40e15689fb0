//! The errors of `lsnn-host`: [`HostError`], and the task and figure errors it wraps.

use std::path::PathBuf;

/// Everything that can go wrong in `lsnn-host`; each variant says what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON (truncated, bad syntax, NaN literals, ...).
    #[error("{}: invalid JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json said, with line and column.
        message: String,
    },
    /// A fixture file is valid JSON but does not follow the fixture format.
    #[error("{}: {key}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in the file, as a key path such as `network.w_rec.shape`.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// A directory given to the checker holds no `*.json` file, or no path was given.
    #[error("{}: no *.json fixture files found", path.display())]
    NoFiles {
        /// The directory.
        path: PathBuf,
    },
    /// A backend name that is not available in this build.
    #[error("unknown backend {name:?} (available: {available})")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The names that exist.
        available: String,
    },
    /// `lsnn-core` rejected something a backend handed it.
    #[error("lsnn-core rejected {context}: {source}")]
    Core {
        /// What the backend was doing.
        context: String,
        /// The core's error.
        #[source]
        source: lsnn_core::CoreError,
    },
    /// A backend computed something it could not finish (wrong sizes, unsupported parameters).
    #[error("backend {backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What went wrong.
        message: String,
    },
    /// A network's parameters or sizes do not fit together (message says which).
    #[error("network: {0}")]
    Network(String),
    /// A batch's target or a user loss is wrong (shapes, windows, a gradient of the wrong
    /// length, a NaN).
    #[error("loss: {0}")]
    Loss(String),
    /// A loss or gradient became NaN or infinite.
    #[error("non-finite value in {what}")]
    NonFinite {
        /// Which quantity (names the parameter array).
        what: String,
    },
    /// A checkpoint cannot be used (unreadable, corrupt, or from another network).
    #[error("{}: corrupt or incompatible checkpoint: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Task data could not be generated or scored (bad task parameters, shapes).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A command-line flag or configuration value is invalid.
    #[error("invalid {flag}: {message}")]
    Flag {
        /// The flag, as typed on the command line.
        flag: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Training stopped at an iteration (e.g. a NaN gradient); the last checkpoint is intact.
    #[error("training stopped at iteration {iteration}: {message}")]
    Training {
        /// The iteration.
        iteration: usize,
        /// What happened.
        message: String,
    },
    /// A data set (MNIST-format folder, IDX file) is missing or malformed, or a split cannot
    /// give what was asked (the message names the file and how to fix it).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

impl HostError {
    /// True for errors about the input (malformed or unreadable files, bad arguments), as
    /// opposed to a computation that failed: the checker exits 2 for these.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            HostError::Io { .. }
                | HostError::Json { .. }
                | HostError::Malformed { .. }
                | HostError::NoFiles { .. }
                | HostError::UnknownBackend { .. }
        )
    }
}

/// What can go wrong when generating task data or scoring a network's answers.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// A task parameter is out of its range.
    #[error("invalid {task} parameter {name}: {message}")]
    InvalidParam {
        /// The task (e.g. "store-recall").
        task: &'static str,
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The rejection sampler found no valid sequence in its budget of attempts: the parameters
    /// make valid sequences too rare (e.g. a very long sequence with frequent store / recall).
    #[error(
        "{task}: no valid sequence after {attempts} attempts; valid sequences are too rare \
         with these parameters (shorten seq_len or raise seq_delay)"
    )]
    TooManyRejections {
        /// The task.
        task: &'static str,
        /// The attempts made for one sequence.
        attempts: usize,
    },
    /// An array does not have the shape the task's data asks for.
    #[error("{task}: {what} has shape {got:?}, expected {expected:?}")]
    Shape {
        /// The task.
        task: &'static str,
        /// Which array.
        what: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// The expected shape.
        expected: Vec<usize>,
    },
}

/// What can go wrong when drawing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The data handed to a plot function are inconsistent (shapes that do not match).
    #[error("plot data: {what}: {message}")]
    Data {
        /// Which field.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Drawing or writing the image failed (e.g. a missing directory or an unknown extension).
    #[error("{}: cannot draw the figure: {message}", path.display())]
    Draw {
        /// The output file.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
    /// The embedded font could not be registered.
    #[error("the embedded font could not be loaded")]
    Font,
}
