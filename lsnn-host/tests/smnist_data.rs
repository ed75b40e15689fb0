//! Sequential MNIST data: IDX reading and its errors, the shipped subset, the train / validation
//! / test splits with TensorFlow's per-epoch shuffling, and the threshold-crossing encoding
//! against hand-derived spikes and the `encoding_smnist` fixture.
//!
//! Everything here uses crafted files in temporary folders or `fixtures/mnist-subset`; nothing
//! needs the full MNIST.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lsnn_host::data::idx::{self, IdxImages};
use lsnn_host::data::{DataError, Dataset, Mnist, MnistFolder, DEFAULT_VALIDATION_SIZE};
use lsnn_host::input::InputBatch;
use lsnn_host::tasks::smnist::{self, pixel_value, SmnistEncoding};
use lsnn_host::HostError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mnist-subset")
}

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/encoding_smnist.json")
}

// ---------------------------------------------------------------------------------------------
// Crafted MNIST-format folders

struct Files {
    train_images: Vec<u8>,
    train_labels: Vec<u8>,
    test_images: Vec<u8>,
    test_labels: Vec<u8>,
}

fn images(count: usize, rows: usize, cols: usize) -> Vec<u8> {
    idx::encode_images(&IdxImages {
        count,
        rows,
        cols,
        pixels: (0..count * rows * cols).map(|i| (i % 251) as u8).collect(),
    })
}

fn good_files() -> Files {
    Files {
        train_images: images(6, 28, 28),
        train_labels: idx::encode_labels(&[0, 1, 2, 3, 4, 9]),
        test_images: images(2, 28, 28),
        test_labels: idx::encode_labels(&[5, 6]),
    }
}

/// Writes the files into a new temporary folder, gzipped where `gz` says (with `.gz` names).
fn write_folder(files: &Files, gz: [bool; 4]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let parts = [
        ("train-images-idx3-ubyte", &files.train_images),
        ("train-labels-idx1-ubyte", &files.train_labels),
        ("t10k-images-idx3-ubyte", &files.test_images),
        ("t10k-labels-idx1-ubyte", &files.test_labels),
    ];
    for ((name, bytes), gz) in parts.into_iter().zip(gz) {
        let name = if gz {
            format!("{name}.gz")
        } else {
            name.into()
        };
        idx::write_bytes(&dir.path().join(name), bytes, gz).unwrap();
    }
    dir
}

#[test]
fn crafted_folder_loads_raw_and_gzip() {
    let dir = write_folder(&good_files(), [true, false, false, true]);
    let mnist = Mnist::load(dir.path()).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (6, 2));
    assert_eq!(mnist.train.labels(), &[0, 1, 2, 3, 4, 9]);
    assert_eq!(mnist.test.label(1), 6);
    assert_eq!(mnist.train.image(1)[0], (784 % 251) as u8);
}

#[test]
fn gzip_is_detected_by_its_magic_not_by_the_name() {
    let dir = write_folder(&good_files(), [false; 4]);
    let p = dir.path();
    // gzip content under a plain name, plain content under a .gz name.
    idx::write_bytes(&p.join("train-images-idx3-ubyte"), &images(6, 28, 28), true).unwrap();
    std::fs::rename(
        p.join("t10k-labels-idx1-ubyte"),
        p.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let mnist = Mnist::load(p).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (6, 2));
    assert_eq!(mnist.test.labels(), &[5, 6]);
}

#[test]
fn missing_folder_and_missing_files_are_named() {
    let dir = write_folder(&good_files(), [true; 4]);
    let gone = dir.path().join("nope");
    let err = MnistFolder::open(&gone).unwrap_err();
    assert!(matches!(err, DataError::NoFolder { .. }), "{err}");
    assert!(err.to_string().contains("no such folder"), "{err}");

    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::remove_file(dir.path().join("train-images-idx3-ubyte.gz")).unwrap();
    let err = MnistFolder::open(dir.path()).unwrap_err();
    let DataError::Missing { missing, .. } = &err else {
        panic!("expected Missing, got {err}");
    };
    assert_eq!(missing.len(), 2);
    let msg = err.to_string();
    for name in [
        "train-images-idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-labels.idx1-ubyte",
    ] {
        assert!(msg.contains(name), "{msg} should name {name}");
    }
    assert!(missing[0].starts_with("training images"), "{missing:?}");
    assert!(missing[1].starts_with("test labels"), "{missing:?}");
    // The HostError wrapper keeps the message.
    assert_eq!(HostError::from(err).to_string(), msg);
}

#[test]
fn wrong_magic_number() {
    let mut files = good_files();
    std::mem::swap(&mut files.test_images, &mut files.test_labels);
    let dir = write_folder(&files, [true; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    match &err {
        DataError::BadMagic {
            path,
            found,
            expected,
        } => {
            assert!(path.ends_with("t10k-images-idx3-ubyte.gz"));
            assert_eq!((*found, *expected), (idx::LABELS_MAGIC, idx::IMAGES_MAGIC));
        }
        other => panic!("expected BadMagic, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );
    assert!(msg.contains("swapped"), "{msg}");

    let mut files = good_files();
    files.train_labels = b"<!DOCTYPE html><html>not found</html>".to_vec();
    let dir = write_folder(&files, [false; 4]);
    let msg = Mnist::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("HTML"), "{msg}");
}

#[test]
fn truncated_data_reports_expected_and_actual_bytes() {
    let mut files = good_files();
    files.train_images.truncate(16 + 5 * 784 + 100);
    let dir = write_folder(&files, [true; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 4720, // 16 + 6 * 784
                actual: 4036,   // 16 + 5 * 784 + 100
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte.gz") && msg.contains("4720") && msg.contains("4036"),
        "{msg}"
    );

    // A cut gzip stream.
    let dir = write_folder(&good_files(), [true; 4]);
    let p = dir.path().join("t10k-images-idx3-ubyte.gz");
    let gz = std::fs::read(&p).unwrap();
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");

    // Trailing bytes.
    let mut files = good_files();
    files.test_labels.push(0);
    let dir = write_folder(&files, [false; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::TooLong {
                expected: 10,
                actual: 11,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn mismatched_counts_bad_labels_and_image_sizes() {
    let mut files = good_files();
    files.train_labels = idx::encode_labels(&[0, 1, 2, 3, 4]);
    let dir = write_folder(&files, [true; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                n_images: 6,
                n_labels: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train-labels-idx1-ubyte.gz"));

    let mut files = good_files();
    files.test_labels = idx::encode_labels(&[5, 10]);
    let dir = write_folder(&files, [true; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadLabel {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte.gz"));

    let mut files = good_files();
    files.test_images = images(2, 27, 28);
    let dir = write_folder(&files, [true; 4]);
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ImageSize {
                rows: 27,
                cols: 28,
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped subset and the splits

#[test]
fn subset_loads_with_its_counts() {
    let mnist = Mnist::load(subset_dir()).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (500, 100));
    assert_eq!(mnist.train.n_pixels(), 784);
    let counts = |labels: &[u8]| {
        let mut c = [0usize; 10];
        labels.iter().for_each(|&l| c[usize::from(l)] += 1);
        c
    };
    assert_eq!(
        counts(mnist.train.labels()),
        [50, 66, 52, 50, 52, 39, 45, 52, 39, 55]
    );
    assert_eq!(
        counts(mnist.test.labels()),
        [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    );
    assert_eq!(&mnist.test.labels()[..4], &[7, 2, 1, 0]);
    assert_eq!(&mnist.train.labels()[..4], &[5, 0, 4, 1]);
}

#[test]
fn validation_split_is_the_first_training_images() {
    let err = Dataset::open(subset_dir(), DEFAULT_VALIDATION_SIZE).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ValidationSize {
                requested: 5000,
                available: 500
            }
        ),
        "{err}"
    );
    let mnist = Mnist::load(subset_dir()).unwrap();
    let ds = Dataset::new(mnist.clone(), 100).unwrap();
    assert_eq!(
        (ds.train.len(), ds.validation.len(), ds.test.len()),
        (400, 100, 100)
    );
    assert!(ds.train.shuffles() && ds.validation.shuffles() && !ds.test.shuffles());
    for i in 0..100 {
        assert_eq!(ds.validation.data().image(i), mnist.train.image(i));
        assert_eq!(ds.validation.data().label(i), mnist.train.label(i));
        assert_eq!(ds.test.data().image(i), mnist.test.image(i));
    }
    for i in 0..400 {
        assert_eq!(ds.train.data().image(i), mnist.train.image(100 + i));
        assert_eq!(ds.train.data().label(i), mnist.train.label(100 + i));
    }
    let all_train = Dataset::new(mnist, 0).unwrap();
    assert_eq!(all_train.train.len(), 500);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut validation = all_train.validation;
    assert!(matches!(
        validation.next_batch(&mut rng, 1),
        Err(DataError::EmptySplit {
            split: "validation"
        })
    ));
}

#[test]
fn every_training_image_once_per_epoch_in_a_new_order() {
    let mnist = Mnist::load(subset_dir()).unwrap();
    let mut ds = Dataset::new(mnist, 100).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = ds.train.len();
    // Batch size 64 does not divide 400: batches straddle the epoch boundaries.
    let mut stream = Vec::new();
    let mut epochs_seen = Vec::new();
    while stream.len() < 5 * n {
        let batch = ds.train.next_batch(&mut rng, 64).unwrap();
        assert_eq!(batch.len(), 64);
        for (k, &i) in batch.indices.iter().enumerate() {
            assert_eq!(batch.labels[k], ds.train.data().label(i));
            assert_eq!(batch.image(k), ds.train.data().image(i));
        }
        stream.extend_from_slice(&batch.indices);
        epochs_seen.push(ds.train.epochs_completed());
    }
    // 6 batches = 384 images: still in epoch 0; the 7th crosses into epoch 1.
    assert_eq!(&epochs_seen[..7], &[0, 0, 0, 0, 0, 0, 1]);
    let epochs: Vec<&[usize]> = stream.chunks(n).take(5).collect();
    for epoch in &epochs {
        let set: BTreeSet<usize> = epoch.iter().copied().collect();
        assert_eq!(set.len(), n, "every image exactly once per epoch");
    }
    // Shuffled: not file order, and a different order every epoch.
    assert_ne!(epochs[0], (0..n).collect::<Vec<_>>().as_slice());
    for a in 0..5 {
        for b in a + 1..5 {
            assert_ne!(epochs[a], epochs[b]);
        }
    }
    // The validation split shuffles too, the test split does not.
    let v = ds.validation.next_batch(&mut rng, 100).unwrap();
    assert_ne!(v.indices, (0..100).collect::<Vec<_>>());
    let t1 = ds.test.next_batch(&mut rng, 60).unwrap();
    let t2 = ds.test.next_batch(&mut rng, 60).unwrap();
    assert_eq!(t1.indices, (0..60).collect::<Vec<_>>());
    assert_eq!(
        t2.indices,
        (60..100).chain(0..20).collect::<Vec<_>>(),
        "test wraps around in file order"
    );
    assert_eq!(ds.test.epochs_completed(), 1);
    // Same seed, same batches.
    let mut ds2 = Dataset::new(Mnist::load(subset_dir()).unwrap(), 100).unwrap();
    let mut rng2 = ChaCha8Rng::seed_from_u64(7);
    assert_eq!(
        ds2.train.next_batch(&mut rng2, 64).unwrap().indices,
        stream[..64]
    );
}

// ---------------------------------------------------------------------------------------------
// The encoding

/// The events of element 0 of `batch` as sorted `(t, c)` pairs (values must be 1).
fn spikes(batch: &InputBatch, b: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for t in 0..batch.n_steps() {
        for (c, v) in batch.events(b, t) {
            assert_eq!(v, 1.0);
            out.push((t, c));
        }
    }
    out
}

/// Smallest pixel byte whose value reaches threshold k / 39: ceil(255 k / 39). At k = 13 and
/// 26 the division is exact (85, 170) and the float32 pixel is above the float64 threshold.
fn first_byte_at_or_above(k: usize) -> usize {
    (255 * k).div_ceil(39)
}

/// A hand-made image and its hand-derived spikes (ext_time 1, 80 channels).
fn hand_image() -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut img = vec![0u8; 784];
    let mut expect = Vec::new();
    let onset = |k: usize| 2 * k;
    let offset = |k: usize| 2 * k + 1;
    // t 0..6: 0, 85, 170, 255, 255, 170, 0 (exactly 1/3, 2/3, 1).
    img[1..6].copy_from_slice(&[85, 170, 255, 255, 170]);
    expect.extend((1..=13).map(|k| (0, onset(k)))); // 0 -> 85 crosses 1/39 .. 13/39
    expect.extend((14..=26).map(|k| (1, onset(k)))); // 85 -> 170: 14/39 .. 26/39
    expect.extend((27..=38).map(|k| (2, onset(k)))); // 170 -> 255: 27/39 .. 38/39
    expect.push((3, 78)); // touch
    expect.push((4, 78));
    expect.extend((27..=38).map(|k| (4, offset(k)))); // 255 -> 170
    expect.extend((1..=26).map(|k| (5, offset(k)))); // 170 -> 0
                                                     // A unit ramp up 0, 1, ..., 255 at t 100..=355, then 0 at 356.
    for i in 0..=255usize {
        img[100 + i] = i as u8;
    }
    for k in 1..=38 {
        expect.push((100 + first_byte_at_or_above(k) - 1, onset(k)));
        expect.push((355, offset(k)));
    }
    expect.push((355, 78));
    // 0 at 399, then a unit ramp down 255, 254, ..., 0 at t 400..=655.
    for j in 0..=255usize {
        img[400 + j] = (255 - j) as u8;
    }
    for k in 1..=38 {
        expect.push((399, onset(k)));
        expect.push((400 + 255 - first_byte_at_or_above(k), offset(k)));
    }
    expect.push((400, 78));
    // A 255 plateau on the last pixel: touch at 783, no crossing out of it (no next pixel).
    img[782] = 100;
    img[783] = 255;
    let k100 = (1..=38)
        .filter(|&k| first_byte_at_or_above(k) <= 100)
        .max()
        .unwrap();
    expect.extend((1..=k100).map(|k| (781, onset(k))));
    expect.extend((k100 + 1..=38).map(|k| (782, onset(k))));
    expect.push((783, 78));
    // The cue.
    expect.extend((784..840).map(|t| (t, 79)));
    expect.sort_unstable();
    (img, expect)
}

#[test]
fn hand_made_image_gives_hand_derived_spikes() {
    let (img, expect) = hand_image();
    let enc = SmnistEncoding::default();
    let batch = enc.encode_batch(&[&img]).unwrap();
    assert_eq!(
        (batch.n_batch(), batch.n_steps(), batch.n_in()),
        (1, 840, 80)
    );
    assert_eq!(spikes(&batch, 0), expect);
    // Threshold 0 never crosses: channels 0 and 1 silent.
    assert!(expect.iter().all(|&(_, c)| c >= 2));
    // The pure crossing function agrees.
    let px: Vec<f32> = img.iter().map(|&p| pixel_value(p)).collect();
    assert_eq!(smnist::threshold_crossings(&px, 80, 56).unwrap(), expect);
}

#[test]
fn ext_time_repeats_pixels_and_stretches_the_cue() {
    let (img, base) = hand_image();
    for ext in [2usize, 3] {
        let enc = SmnistEncoding {
            ext_time: ext,
            ..SmnistEncoding::default()
        };
        let batch = enc.encode_batch(&[&img]).unwrap();
        assert_eq!(batch.n_steps(), 840 * ext);
        assert_eq!(enc.cue_steps(), 56 * ext);
        assert_eq!(enc.loss_window(), (840 * ext - 28, 840 * ext));
        let mut expect = Vec::new();
        for &(t, c) in &base {
            match c {
                // Touch: every repeat of the pixel.
                78 => expect.extend((0..ext).map(|r| (t * ext + r, c))),
                // Cue: all appended steps.
                79 if t == 784 => expect.extend((784 * ext..840 * ext).map(|s| (s, c))),
                79 => {}
                // A crossing: at the last repeat of the earlier pixel.
                _ => expect.push((t * ext + ext - 1, c)),
            }
        }
        expect.sort_unstable();
        assert_eq!(spikes(&batch, 0), expect, "ext_time {ext}");
    }
}

#[test]
fn analog_variant_feeds_pixel_values_on_one_channel() {
    let (img, _) = hand_image();
    for ext in [1usize, 2] {
        let enc = SmnistEncoding {
            crs_thr: false,
            ext_time: ext,
            ..SmnistEncoding::default()
        };
        assert_eq!(enc.cue_steps(), 0);
        assert_eq!(enc.loss_window(), (784 * ext - 1, 784 * ext));
        let batch = enc.encode_batch(&[&img, &img]).unwrap();
        assert_eq!(
            (batch.n_batch(), batch.n_steps(), batch.n_in()),
            (2, 784 * ext, 1)
        );
        let x = batch.dense_element(1);
        for t in 0..784 * ext {
            assert_eq!(x[[t, 0]], pixel_value(img[t / ext]), "t {t}");
        }
        assert_eq!(x[[ext, 0]].to_bits(), pixel_value(85).to_bits());
    }
}

#[test]
fn bad_parameters_and_shapes_are_rejected() {
    let enc = SmnistEncoding::default();
    assert!(enc.encode_batch(&[&[0u8; 783][..]]).is_err());
    let odd = SmnistEncoding { n_in: 81, ..enc };
    assert!(odd.validate().is_err());
    assert!(odd.encode_batch(&[&[0u8; 784][..]]).is_err());
    let zero = SmnistEncoding { ext_time: 0, ..enc };
    assert!(zero.validate().is_err());
    // A smaller even n_in is fine: linspace(0, 1, 10) -> 9 * 2 + 1 + cue.
    let small = SmnistEncoding { n_in: 20, ..enc };
    let (img, _) = hand_image();
    let batch = small.encode_batch(&[&img]).unwrap();
    assert_eq!(batch.n_in(), 20);
}

/// The fixture's first four rows are MNIST test images 0-3: the subset's test images 0-3 must
/// give exactly those pixel values (TensorFlow's float32 scaling) and exactly the fixture's
/// spikes through the byte path of the encoder.
#[test]
fn subset_test_images_reproduce_the_encoding_fixture() {
    let text = std::fs::read_to_string(fixture_path()).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pixels: Vec<f64> = fx["input"]["pixels"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let spikes_flat: Vec<usize> = fx["expect"]["spikes"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mnist = Mnist::load(subset_dir()).unwrap();
    let images: Vec<&[u8]> = (0..4).map(|i| mnist.test.image(i)).collect();
    for (k, img) in images.iter().enumerate() {
        for (t, &p) in img.iter().enumerate() {
            // The JSON holds the float32 values in decimal; `as f32` recovers them exactly.
            let want = pixels[k * 784 + t] as f32;
            assert_eq!(
                pixel_value(p).to_bits(),
                want.to_bits(),
                "image {k} pixel {t}"
            );
        }
    }
    let batch = SmnistEncoding::default().encode_batch(&images).unwrap();
    let got: Vec<[usize; 3]> = (0..4)
        .flat_map(|k| spikes(&batch, k).into_iter().map(move |(t, c)| [k, t, c]))
        .collect();
    let want: Vec<[usize; 3]> = spikes_flat
        .chunks_exact(3)
        .map(|s| [s[0], s[1], s[2]])
        .filter(|s| s[0] < 4)
        .collect();
    assert!(want.len() > 1000);
    assert_eq!(got, want);
}

#[test]
fn encode_a_drawn_batch_with_its_labels() {
    let mut ds = Dataset::open(subset_dir(), 100).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let batch = ds.test.next_batch(&mut rng, 5).unwrap();
    let enc = SmnistEncoding::default();
    let encoded = enc.encode(&batch).unwrap();
    assert_eq!(encoded.labels, vec![7, 2, 1, 0, 4]);
    assert_eq!(encoded.input.n_batch(), 5);
    assert_eq!(encoded.input.n_steps(), 840);
    for b in 0..5 {
        assert_eq!(
            spikes(&encoded.input, b),
            spikes(&enc.encode_batch(&[batch.image(b)]).unwrap(), 0)
        );
    }
}
