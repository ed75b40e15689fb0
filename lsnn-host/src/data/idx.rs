//! The IDX file format of MNIST (and Fashion-MNIST), raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 TT NN` (TT = element type, 0x08 = unsigned byte;
//! NN = number of dimensions), then NN big-endian `u32` dimension sizes, then the elements in
//! row-major order. MNIST uses two kinds:
//! - images: magic `0x00000803`, dimensions `[count, rows, cols]`, one byte per pixel;
//! - labels: magic `0x00000801`, dimension `[count]`, one byte per label.
//!
//! Files may be gzip-compressed: compression is detected by the gzip magic bytes `1f 8b` at the
//! start of the file, not by the file name. Every reader checks the magic number, the dimensions
//! and that the data has exactly the length the header announces.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::DataError;

pub use super::magic::{IMAGES_MAGIC, LABELS_MAGIC};
/// The first two bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The size of an images file's header (magic + 3 dimensions).
pub const IMAGES_HEADER: usize = 16;
/// The size of a labels file's header (magic + 1 dimension).
pub const LABELS_HEADER: usize = 8;

/// The images of an IDX images file: `count` images of `rows x cols` bytes, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels per image (`rows * cols`).
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }
}

/// The contents of `path`, decompressed if it starts with the gzip magic bytes.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// Reads an IDX images file (raw or gzip).
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    parse_images(path, &read_bytes(path)?)
}

/// Reads an IDX labels file (raw or gzip). Any byte value is accepted here; the MNIST loader
/// checks that labels are digits.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    parse_labels(path, &read_bytes(path)?)
}

/// Parses the (decompressed) bytes of an images file; `path` only names it in errors.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<IdxImages, DataError> {
    let dims = parse_header(path, bytes, IMAGES_MAGIC, 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::BadDims {
            path: path.to_path_buf(),
            message: format!(
                "images of {rows} x {cols} pixels (an image needs at least one row and column)"
            ),
        });
    }
    let data = check_length(path, bytes, IMAGES_HEADER, &dims)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: data.to_vec(),
    })
}

/// Parses the (decompressed) bytes of a labels file; `path` only names it in errors.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let dims = parse_header(path, bytes, LABELS_MAGIC, 1)?;
    Ok(check_length(path, bytes, LABELS_HEADER, &dims)?.to_vec())
}

/// Checks the magic number and reads `n_dims` dimensions.
fn parse_header(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    n_dims: usize,
) -> Result<Vec<usize>, DataError> {
    let header = 4 + 4 * n_dims;
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            actual: bytes.len() as u64,
        });
    }
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            actual: bytes.len() as u64,
        });
    }
    Ok((0..n_dims).map(|d| word(4 + 4 * d) as usize).collect())
}

/// The data after the header, checked to hold exactly `product(dims)` bytes.
fn check_length<'a>(
    path: &Path,
    bytes: &'a [u8],
    header: usize,
    dims: &[usize],
) -> Result<&'a [u8], DataError> {
    let data_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|n| n.checked_add(header as u64));
    let expected = data_len.ok_or_else(|| DataError::BadDims {
        path: path.to_path_buf(),
        message: format!("dimensions {dims:?} overflow 64 bits"),
    })?;
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(DataError::TooLong {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(&bytes[header..])
}

/// The IDX bytes of `images` (not compressed).
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(IMAGES_HEADER + images.pixels.len());
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for d in [images.count, images.rows, images.cols] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// The IDX bytes of `labels` (not compressed).
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABELS_HEADER + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Writes `bytes` to `path`, gzip-compressed (best compression, no name or time stamp in the
/// gzip header) if `gzip` is true.
pub fn write_bytes(path: &Path, bytes: &[u8], gzip: bool) -> Result<(), DataError> {
    let io = |source| DataError::Write {
        path: path.to_path_buf(),
        source,
    };
    if gzip {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(bytes).map_err(io)?;
        let compressed = enc.finish().map_err(io)?;
        std::fs::write(path, compressed).map_err(io)
    } else {
        std::fs::write(path, bytes).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x")
    }

    #[test]
    fn round_trip_of_images_and_labels() {
        let images = IdxImages {
            count: 2,
            rows: 2,
            cols: 3,
            pixels: (0..12).collect(),
        };
        assert_eq!(parse_images(p(), &encode_images(&images)).unwrap(), images);
        assert_eq!(
            parse_labels(p(), &encode_labels(&[3, 1, 4])).unwrap(),
            vec![3, 1, 4]
        );
    }

    #[test]
    fn header_checks() {
        let good = encode_labels(&[1, 2]);
        assert!(matches!(
            parse_labels(p(), &good[..3]),
            Err(DataError::Truncated {
                expected: 8,
                actual: 3,
                ..
            })
        ));
        assert!(matches!(
            parse_labels(p(), &good[..6]),
            Err(DataError::Truncated {
                expected: 8,
                actual: 6,
                ..
            })
        ));
        assert!(matches!(
            parse_images(p(), &good),
            Err(DataError::BadMagic {
                found: LABELS_MAGIC,
                expected: IMAGES_MAGIC,
                ..
            })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            parse_labels(p(), &long),
            Err(DataError::TooLong {
                expected: 10,
                actual: 11,
                ..
            })
        ));
        let zero_rows = encode_images(&IdxImages {
            count: 0,
            rows: 0,
            cols: 28,
            pixels: vec![],
        });
        assert!(matches!(
            parse_images(p(), &zero_rows),
            Err(DataError::BadDims { .. })
        ));
    }
}
