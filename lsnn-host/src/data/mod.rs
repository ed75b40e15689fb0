//! Data sets on disk: MNIST-format folders (MNIST, Fashion-MNIST), read from IDX files, and
//! the train / validation / test splits of TensorFlow's `input_data.read_data_sets`, which the
//! sMNIST tutorial of the original uses.
//!
//! - [`idx`]: the IDX file format, raw or gzip.
//! - [`MnistFolder`]: finds the four files of an MNIST-format folder and loads them as [`Mnist`].
//! - [`Dataset`]: train / validation / test [`Split`]s. As TensorFlow's loader, the validation
//!   split is the FIRST `validation_size` training images (default 5 000, so 55 000 remain for
//!   training); the test split is the test file.
//! - [`Split::next_batch`]: TensorFlow's `DataSet.next_batch`: the order is shuffled before the
//!   first batch and again at every epoch boundary (train and validation), a batch that crosses
//!   the boundary takes the rest of the epoch and continues from the reshuffled order, and
//!   [`Split::epochs_completed`] counts the finished epochs. The test split is read in file order
//!   without shuffling (`next_batch(n, shuffle=False)` in the original).
//!
//! Pixels stay `u8` here; the sMNIST encoding ([`crate::tasks::smnist`]) converts them to
//! `[0, 1]` exactly as TensorFlow's loader does (`u8 as f32 * f32(1/255)`).

mod error;
pub mod idx;
mod magic;

pub use error::DataError;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::Rng;

/// Rows of an MNIST image.
pub const IMAGE_ROWS: usize = 28;
/// Columns of an MNIST image.
pub const IMAGE_COLS: usize = 28;
/// Pixels of an MNIST image (784).
pub const IMAGE_PIXELS: usize = IMAGE_ROWS * IMAGE_COLS;
/// Number of classes (digits 0-9); a label must be below this.
pub const N_CLASSES: usize = 10;
/// TensorFlow's default validation size: the first 5 000 training images.
pub const DEFAULT_VALIDATION_SIZE: usize = 5000;

/// The four files of an MNIST-format folder, as (role, base name). Each is looked for as
/// `NAME`, `NAME.gz`, and with `.idx` in place of `-idx` (`train-images.idx3-ubyte`, the
/// spelling of some mirrors), in that order; the first that exists is used.
pub const MNIST_FILES: [(&str, &str); 4] = [
    ("training images", "train-images-idx3-ubyte"),
    ("training labels", "train-labels-idx1-ubyte"),
    ("test images", "t10k-images-idx3-ubyte"),
    ("test labels", "t10k-labels-idx1-ubyte"),
];

/// Images with their labels, as loaded from one images file and one labels file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledImages {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    n_pixels: usize,
}

impl LabeledImages {
    /// `pixels` holds `labels.len()` images of `n_pixels` bytes each; labels must be `< 10`.
    ///
    /// # Panics
    /// If the lengths do not fit together or a label is not a digit (a programming error:
    /// [`MnistFolder::load`] checks files and reports them as [`DataError`]s).
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, n_pixels: usize) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * n_pixels,
            "pixels must hold labels.len() images of n_pixels each"
        );
        assert!(
            labels.iter().all(|&l| usize::from(l) < N_CLASSES),
            "labels must be digits 0-9"
        );
        LabeledImages {
            pixels,
            labels,
            n_pixels,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn n_pixels(&self) -> usize {
        self.n_pixels
    }

    /// The pixels of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.n_pixels..(i + 1) * self.n_pixels]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    /// All labels in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Splits off the first `n` images: `(first n, the rest)`. `n` must be `<= len()`.
    fn split_at(self, n: usize) -> (LabeledImages, LabeledImages) {
        let (pa, pb) = self.pixels.split_at(n * self.n_pixels);
        let (la, lb) = self.labels.split_at(n);
        (
            LabeledImages::new(pa.to_vec(), la.to_vec(), self.n_pixels),
            LabeledImages::new(pb.to_vec(), lb.to_vec(), self.n_pixels),
        )
    }
}

/// An MNIST-format folder: the paths of its four files (found by [`MnistFolder::open`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Training images (`train-images-idx3-ubyte[.gz]`).
    pub train_images: PathBuf,
    /// Training labels (`train-labels-idx1-ubyte[.gz]`).
    pub train_labels: PathBuf,
    /// Test images (`t10k-images-idx3-ubyte[.gz]`).
    pub test_images: PathBuf,
    /// Test labels (`t10k-labels-idx1-ubyte[.gz]`).
    pub test_labels: PathBuf,
}

/// The names a file of an MNIST-format folder is looked for under, in order of preference.
pub fn candidate_names(base: &str) -> Vec<String> {
    let dotted = base.replacen("-idx", ".idx", 1);
    vec![
        base.to_string(),
        format!("{base}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
}

impl MnistFolder {
    /// Finds the four files in `dir` (see [`MNIST_FILES`] for the names accepted). Nothing is
    /// read yet; a missing folder or missing files are reported all at once.
    pub fn open(dir: impl AsRef<Path>) -> Result<MnistFolder, DataError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(DataError::NoFolder {
                dir: dir.to_path_buf(),
            });
        }
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (role, base) in MNIST_FILES {
            let names = candidate_names(base);
            match names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
                Some(path) => found.push(path),
                None => missing.push(format!("{role} (looked for {})", names.join(", "))),
            }
        }
        if !missing.is_empty() {
            return Err(DataError::Missing {
                dir: dir.to_path_buf(),
                missing,
            });
        }
        let mut found = found.into_iter();
        let mut next = || found.next().expect("four files found");
        Ok(MnistFolder {
            dir: dir.to_path_buf(),
            train_images: next(),
            train_labels: next(),
            test_images: next(),
            test_labels: next(),
        })
    }

    /// Reads and checks the four files: magic numbers, lengths, 28 x 28 images, as many labels
    /// as images, labels 0-9.
    pub fn load(&self) -> Result<Mnist, DataError> {
        Ok(Mnist {
            train: load_pair(&self.train_images, &self.train_labels)?,
            test: load_pair(&self.test_images, &self.test_labels)?,
        })
    }
}

/// Reads one images file and its labels file and checks them against each other.
pub fn load_pair(images: &Path, labels: &Path) -> Result<LabeledImages, DataError> {
    let im = idx::read_images(images)?;
    if (im.rows, im.cols) != (IMAGE_ROWS, IMAGE_COLS) {
        return Err(DataError::ImageSize {
            path: images.to_path_buf(),
            rows: im.rows,
            cols: im.cols,
        });
    }
    let lab = idx::read_labels(labels)?;
    if lab.len() != im.count {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            n_images: im.count,
            labels: labels.to_path_buf(),
            n_labels: lab.len(),
        });
    }
    if let Some((index, &label)) = lab
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= N_CLASSES)
    {
        return Err(DataError::BadLabel {
            path: labels.to_path_buf(),
            index,
            label,
        });
    }
    Ok(LabeledImages::new(im.pixels, lab, IMAGE_PIXELS))
}

/// The training and test sets of an MNIST-format folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// The training file (60 000 images for MNIST).
    pub train: LabeledImages,
    /// The test file (10 000 images for MNIST).
    pub test: LabeledImages,
}

impl Mnist {
    /// [`MnistFolder::open`] then [`MnistFolder::load`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
        MnistFolder::open(dir)?.load()
    }
}

/// A batch of images drawn from a [`Split`]: copies of the pixels, with labels and the indices
/// of the images in their split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Index of each image in its split.
    pub indices: Vec<usize>,
    /// The labels (digits 0-9).
    pub labels: Vec<usize>,
    pixels: Vec<u8>,
    n_pixels: usize,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True if the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Pixels per image.
    pub fn n_pixels(&self) -> usize {
        self.n_pixels
    }

    /// Image `i` of the batch.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.n_pixels..(i + 1) * self.n_pixels]
    }

    /// Every image of the batch, in order.
    pub fn images(&self) -> Vec<&[u8]> {
        (0..self.len()).map(|i| self.image(i)).collect()
    }
}

/// Where a split stands in its epochs: enough to continue a run exactly after a resume.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitPosition {
    /// The current epoch's order of the images.
    pub order: Vec<usize>,
    /// Images already handed out in this epoch.
    pub index_in_epoch: usize,
    /// Completed epochs.
    pub epochs_completed: usize,
}

/// One split (train, validation or test) with its position in the current epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    name: &'static str,
    data: LabeledImages,
    shuffle: bool,
    order: Vec<usize>,
    index_in_epoch: usize,
    epochs_completed: usize,
}

impl Split {
    /// A split named `name` (for messages); `shuffle` as the `shuffle` argument of TensorFlow's
    /// `next_batch` (true for train and validation, false for test).
    pub fn new(name: &'static str, data: LabeledImages, shuffle: bool) -> Split {
        let order = (0..data.len()).collect();
        Split {
            name,
            data,
            shuffle,
            order,
            index_in_epoch: 0,
            epochs_completed: 0,
        }
    }

    /// The split's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if the split has no image.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether [`Split::next_batch`] shuffles.
    pub fn shuffles(&self) -> bool {
        self.shuffle
    }

    /// The images in file order.
    pub fn data(&self) -> &LabeledImages {
        &self.data
    }

    /// Number of completed epochs (incremented when a batch crosses the end of an epoch; a
    /// batch that ends exactly at the end leaves it unchanged until the next call, as
    /// TensorFlow's `_epochs_completed`).
    pub fn epochs_completed(&self) -> usize {
        self.epochs_completed
    }

    /// Position in the current epoch (images already handed out in it).
    pub fn index_in_epoch(&self) -> usize {
        self.index_in_epoch
    }

    /// The position in the epochs (for checkpoints).
    pub fn position(&self) -> SplitPosition {
        SplitPosition {
            order: self.order.clone(),
            index_in_epoch: self.index_in_epoch,
            epochs_completed: self.epochs_completed,
        }
    }

    /// Continues from a saved position; it must be a permutation of this split's images.
    pub fn restore(&mut self, position: SplitPosition) -> Result<(), DataError> {
        let mut seen = vec![false; self.len()];
        let permutation = position.order.len() == self.len()
            && position
                .order
                .iter()
                .all(|&i| i < seen.len() && !std::mem::replace(&mut seen[i], true));
        if !permutation || position.index_in_epoch > self.len() {
            return Err(DataError::Position { split: self.name });
        }
        self.order = position.order;
        self.index_in_epoch = position.index_in_epoch;
        self.epochs_completed = position.epochs_completed;
        Ok(())
    }

    /// Back to the start of epoch 0, file order.
    pub fn reset(&mut self) {
        self.order = (0..self.data.len()).collect();
        self.index_in_epoch = 0;
        self.epochs_completed = 0;
    }

    /// The next `n` images, as TensorFlow's `DataSet.next_batch(n, shuffle)`: with shuffling,
    /// the order is shuffled (with `rng`) before the very first batch and at each epoch
    /// boundary; a batch that runs past the end of the epoch takes the rest of the epoch, counts
    /// the epoch as completed, reshuffles and continues from the start of the new order. So each
    /// image is handed out exactly once per epoch. Without shuffling (test), images come in file
    /// order, wrapping around at the end. `n` larger than the split spans several epochs (where
    /// TensorFlow would return a short batch). `rng` is not used without shuffling.
    pub fn next_batch<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        n: usize,
    ) -> Result<Batch, DataError> {
        if n == 0 {
            return Ok(self.batch(&[]));
        }
        if self.is_empty() {
            return Err(DataError::EmptySplit { split: self.name });
        }
        let len = self.len();
        if self.shuffle && self.epochs_completed == 0 && self.index_in_epoch == 0 {
            self.order.shuffle(rng);
        }
        let mut indices = Vec::with_capacity(n);
        let mut need = n;
        loop {
            let start = self.index_in_epoch;
            if start + need <= len {
                indices.extend_from_slice(&self.order[start..start + need]);
                self.index_in_epoch += need;
                break;
            }
            indices.extend_from_slice(&self.order[start..]);
            need -= len - start;
            self.epochs_completed += 1;
            if self.shuffle {
                self.order.shuffle(rng);
            }
            self.index_in_epoch = 0;
        }
        Ok(self.batch(&indices))
    }

    /// The images at `indices` (of this split), e.g. consecutive chunks for a full pass over
    /// the test set. Does not move the epoch position.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let mut pixels = Vec::with_capacity(indices.len() * self.data.n_pixels);
        for &i in indices {
            pixels.extend_from_slice(self.data.image(i));
        }
        Batch {
            indices: indices.to_vec(),
            labels: indices.iter().map(|&i| self.data.label(i)).collect(),
            pixels,
            n_pixels: self.data.n_pixels,
        }
    }
}

/// The three splits of the sMNIST tutorial (TensorFlow's `read_data_sets` with
/// `validation_size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Training images after the validation images (55 000 for MNIST); shuffled per epoch.
    pub train: Split,
    /// The first `validation_size` training images (5 000); shuffled per epoch.
    pub validation: Split,
    /// The test file (10 000), in file order.
    pub test: Split,
}

impl Dataset {
    /// Splits `mnist` as TensorFlow's loader: validation = the first `validation_size` training
    /// images, train = the rest, test = the test file. A `validation_size` larger than the
    /// training file is an error (as in TensorFlow), not clamped: with a small folder such as
    /// `fixtures/mnist-subset` (500 training images) pass a smaller size explicitly. 0 is
    /// allowed (an empty validation split, which refuses batches).
    pub fn new(mnist: Mnist, validation_size: usize) -> Result<Dataset, DataError> {
        if validation_size > mnist.train.len() {
            return Err(DataError::ValidationSize {
                requested: validation_size,
                available: mnist.train.len(),
            });
        }
        let (validation, train) = mnist.train.split_at(validation_size);
        Ok(Dataset {
            train: Split::new("train", train, true),
            validation: Split::new("validation", validation, true),
            test: Split::new("test", mnist.test, false),
        })
    }

    /// Loads the MNIST-format folder `dir` and splits it ([`Dataset::new`]).
    pub fn open(dir: impl AsRef<Path>, validation_size: usize) -> Result<Dataset, DataError> {
        Dataset::new(Mnist::load(dir)?, validation_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn split(n: usize, shuffle: bool) -> Split {
        let pixels = (0..n).map(|i| i as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Split::new("s", LabeledImages::new(pixels, labels, 1), shuffle)
    }

    #[test]
    fn tf_epoch_boundaries() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = split(10, true);
        let a = s.next_batch(&mut rng, 4).unwrap();
        let b = s.next_batch(&mut rng, 4).unwrap();
        assert_eq!(s.epochs_completed(), 0);
        // Exactly at the end: still epoch 0, as TensorFlow.
        let c = s.next_batch(&mut rng, 2).unwrap();
        assert_eq!((s.epochs_completed(), s.index_in_epoch()), (0, 10));
        let mut all: Vec<usize> = [a.indices, b.indices, c.indices].concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // The next call finishes the epoch with an empty rest and starts the next one.
        let d = s.next_batch(&mut rng, 3).unwrap();
        assert_eq!(
            (s.epochs_completed(), s.index_in_epoch(), d.len()),
            (1, 3, 3)
        );
        // Labels and pixels follow the indices.
        for (k, &i) in d.indices.iter().enumerate() {
            assert_eq!(d.labels[k], i % 10);
            assert_eq!(d.image(k), &[i as u8]);
        }
    }

    #[test]
    fn no_shuffle_wraps_in_file_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = split(5, false);
        assert_eq!(s.next_batch(&mut rng, 3).unwrap().indices, vec![0, 1, 2]);
        assert_eq!(s.next_batch(&mut rng, 3).unwrap().indices, vec![3, 4, 0]);
        assert_eq!(s.epochs_completed(), 1);
        assert_eq!(s.next_batch(&mut rng, 12).unwrap().indices.len(), 12);
        assert_eq!(s.epochs_completed(), 3);
        assert_eq!(s.index_in_epoch(), 3);
    }

    #[test]
    fn empty_split_refuses_batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = split(0, true);
        assert!(s.next_batch(&mut rng, 0).unwrap().is_empty());
        assert!(matches!(
            s.next_batch(&mut rng, 1),
            Err(DataError::EmptySplit { split: "s" })
        ));
    }

    #[test]
    fn candidate_names_include_gz_and_dotted() {
        assert_eq!(
            candidate_names("t10k-labels-idx1-ubyte"),
            vec![
                "t10k-labels-idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-labels.idx1-ubyte",
                "t10k-labels.idx1-ubyte.gz"
            ]
        );
    }
}
