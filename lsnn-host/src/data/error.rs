//! What can go wrong reading a data set.

use std::path::PathBuf;

use super::magic::{kind_of, magic_hint};

/// What can go wrong reading a data set. Each variant names the file and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file starts with the gzip magic bytes but does not decompress.
    #[error(
        "{}: corrupt or truncated gzip data ({source}); download the file again \
         (`gzip -t FILE` tests it)",
        path.display()
    )]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// The data folder does not exist or is not a directory.
    #[error(
        "{}: no such folder; give a folder holding the four MNIST-format IDX files \
         (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
         t10k-labels-idx1-ubyte, optionally .gz)",
        dir.display()
    )]
    NoFolder {
        /// The folder asked for.
        dir: PathBuf,
    },
    /// Files of an MNIST-format folder are missing.
    #[error(
        "{}: not an MNIST-format folder: missing {}. Put the four IDX files of MNIST \
         (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, \
         t10k-labels-idx1-ubyte.gz) in this folder, or point to one that has them (Fashion-MNIST \
         uses the same names: Debian's dataset-fashion-mnist installs them in \
         /usr/share/datasets/fashion-mnist)",
        dir.display(),
        missing.join("; ")
    )]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// One entry per missing file: its role and the names looked for.
        missing: Vec<String>,
    },
    /// The magic number is not the one of the expected IDX kind.
    #[error(
        "{}: magic number 0x{found:08x}, expected 0x{expected:08x} (IDX {}): {}",
        path.display(),
        kind_of(*expected),
        magic_hint(*found, *expected)
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
        /// The magic number of the expected kind.
        expected: u32,
    },
    /// The file (after decompression) is shorter than its header announces.
    #[error(
        "{}: truncated: expected {expected} bytes (header and the data its dimensions announce), \
         found {actual}; the file is incomplete: download it again",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces (or the header's own size).
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// The file (after decompression) is longer than its header announces.
    #[error(
        "{}: {actual} bytes, but the header announces {expected}: not a well-formed IDX file \
         (trailing data, or a wrong count in the header)",
        path.display()
    )]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// The header's dimensions are unusable.
    #[error("{}: bad dimensions: {message}", path.display())]
    BadDims {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Images are not 28 x 28.
    #[error(
        "{}: images are {rows} x {cols} pixels; MNIST-format images are 28 x 28",
        path.display()
    )]
    ImageSize {
        /// The images file.
        path: PathBuf,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// An images file and its labels file hold different numbers of items.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels; the two files must come \
         from the same set (train-* with train-*, t10k-* with t10k-*)",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Its number of images.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Its number of labels.
        n_labels: usize,
    },
    /// A label is not a digit 0-9.
    #[error(
        "{}: label {label} at index {index} is not a class 0-9; this is not an MNIST-format \
         labels file",
        path.display()
    )]
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// Index of the first bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// The validation split asks for more images than the training file has.
    #[error(
        "validation size {requested} exceeds the {available} training images; \
         choose a validation size of at most {available} (TensorFlow's default is 5000 of the \
         60 000 MNIST training images)"
    )]
    ValidationSize {
        /// The validation size asked for.
        requested: usize,
        /// The training images available.
        available: usize,
    },
    /// A batch was asked of a split without images.
    #[error(
        "the {split} split has no images (validation size 0, or all training images held out)"
    )]
    EmptySplit {
        /// The split's name.
        split: &'static str,
    },
    /// A saved position does not fit the split (another dataset than the run's).
    #[error(
        "the saved position of the {split} split does not match this dataset: resume with the \
         same --data-dir as the original run"
    )]
    Position {
        /// The split's name.
        split: &'static str,
    },
}
