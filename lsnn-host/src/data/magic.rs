//! The magic numbers of IDX files and what a wrong one says about a file (for
//! [`DataError`](super::DataError)'s messages).

/// Magic number of an IDX file of unsigned-byte images `[count, rows, cols]`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels `[count]`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

pub(super) fn kind_of(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "unsigned-byte images [count, rows, cols]",
        LABELS_MAGIC => "unsigned-byte labels [count]",
        _ => "file",
    }
}

pub(super) fn magic_hint(found: u32, expected: u32) -> &'static str {
    match found {
        IMAGES_MAGIC | LABELS_MAGIC if found != expected => {
            "this is the other kind of IDX file: are the images and labels file names swapped?"
        }
        0x3c21_444f | 0x3c68_746d | 0x3c48_544d => {
            "this is an HTML page, not data: the download failed, fetch the file again"
        }
        _ => "not an MNIST-format IDX file",
    }
}
