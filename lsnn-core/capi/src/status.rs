//! Status codes: every error of the C API, each with a static message.

use core::ffi::c_char;

use lsnn_core::CoreError;

/// What a function of the C API reports: `LSNN_OK` or one of the `LSNN_ERR_*` codes;
/// `lsnn_status_message` turns any of them into text.
pub type lsnn_status = i32;

/// Success.
pub const LSNN_OK: lsnn_status = 0;
/// A pointer argument that must not be NULL is NULL.
pub const LSNN_ERR_NULL_POINTER: lsnn_status = 1;
/// The network memory (or a network pointer) is not aligned to `LSNN_NET_ALIGN`.
pub const LSNN_ERR_ALIGNMENT: lsnn_status = 2;
/// The network memory is smaller than `lsnn_model_info.net_bytes`.
pub const LSNN_ERR_MEMORY_TOO_SMALL: lsnn_status = 3;
/// The network memory overlaps the model bytes.
pub const LSNN_ERR_MEMORY_OVERLAP: lsnn_status = 4;
/// The pointer does not point to a network that `lsnn_net_init` created at this address.
pub const LSNN_ERR_NOT_A_NET: lsnn_status = 5;
/// An input channel is `>= n_in`.
pub const LSNN_ERR_INPUT_CHANNEL: lsnn_status = 6;
/// The input channels of a step are not strictly increasing.
pub const LSNN_ERR_INPUT_ORDER: lsnn_status = 7;
/// An output buffer is shorter than what it must hold.
pub const LSNN_ERR_BUFFER_TOO_SMALL: lsnn_status = 8;
/// A length is larger than the address space allows.
pub const LSNN_ERR_LENGTH: lsnn_status = 9;
/// Model bytes: bad magic (not an LSNN model).
pub const LSNN_ERR_MODEL_MAGIC: lsnn_status = 20;
/// Model bytes: a format version this build cannot read.
pub const LSNN_ERR_MODEL_VERSION: lsnn_status = 21;
/// Model bytes: shorter than the model declares.
pub const LSNN_ERR_MODEL_TRUNCATED: lsnn_status = 22;
/// Model bytes: checksum mismatch.
pub const LSNN_ERR_MODEL_CHECKSUM: lsnn_status = 23;
/// Model bytes: a header field or a framing rule is violated.
pub const LSNN_ERR_MODEL_FORMAT: lsnn_status = 24;
/// Model bytes: a section is misplaced, duplicated, missing, of the wrong length or unknown
/// and required.
pub const LSNN_ERR_MODEL_SECTION: lsnn_status = 25;
/// Model bytes: a weight kind this build cannot decode.
pub const LSNN_ERR_MODEL_WEIGHT_KIND: lsnn_status = 26;
/// Model bytes: the framing or the CSR offsets of a weight matrix are invalid.
pub const LSNN_ERR_MODEL_MATRIX: lsnn_status = 27;
/// Model bytes: a synapse points outside the network, has a delay `>= n_delay` or is an
/// autapse.
pub const LSNN_ERR_MODEL_SYNAPSE: lsnn_status = 28;
/// Model: a parameter (cell, neuron, readout or integer scales) is not usable.
pub const LSNN_ERR_MODEL_PARAMETER: lsnn_status = 29;
/// Model: a size is out of range, or storage does not fit it.
pub const LSNN_ERR_MODEL_SIZE: lsnn_status = 30;

/// The status of a core error (one code per kind of error; the text with the details comes
/// from `lsnn_model_error`).
pub(crate) fn of_core(e: &CoreError) -> lsnn_status {
    match e {
        CoreError::BadMagic => LSNN_ERR_MODEL_MAGIC,
        CoreError::UnsupportedVersion { .. } => LSNN_ERR_MODEL_VERSION,
        CoreError::Truncated { .. } => LSNN_ERR_MODEL_TRUNCATED,
        CoreError::BadChecksum { .. } => LSNN_ERR_MODEL_CHECKSUM,
        CoreError::Format { .. } => LSNN_ERR_MODEL_FORMAT,
        CoreError::Section { .. }
        | CoreError::SectionLength { .. }
        | CoreError::UnsupportedSection { .. } => LSNN_ERR_MODEL_SECTION,
        CoreError::UnsupportedWeightKind { .. } => LSNN_ERR_MODEL_WEIGHT_KIND,
        CoreError::Matrix { .. } | CoreError::CsrOffsets { .. } => LSNN_ERR_MODEL_MATRIX,
        CoreError::Synapse { .. } => LSNN_ERR_MODEL_SYNAPSE,
        CoreError::Parameter { .. } | CoreError::NeuronParameter { .. } => LSNN_ERR_MODEL_PARAMETER,
        CoreError::Size { .. } | CoreError::Length { .. } | CoreError::Capacity { .. } => {
            LSNN_ERR_MODEL_SIZE
        }
    }
}

/// The message of `status`: what went wrong and how to fix it, NUL-terminated for C (plain
/// `"...\0"` strings: C-string literals would not get past cbindgen 0.24's parser).
fn message(status: lsnn_status) -> &'static str {
    match status {
        LSNN_OK => "ok\0",
        LSNN_ERR_NULL_POINTER => "a pointer argument is NULL (only an empty list may be NULL)\0",
        LSNN_ERR_ALIGNMENT => {
            "the network memory or pointer is not aligned to LSNN_NET_ALIGN bytes\0"
        }
        LSNN_ERR_MEMORY_TOO_SMALL => {
            "the network memory is smaller than lsnn_model_info.net_bytes (lsnn_model_check)\0"
        }
        LSNN_ERR_MEMORY_OVERLAP => "the network memory overlaps the model bytes\0",
        LSNN_ERR_NOT_A_NET => "not a network created by lsnn_net_init at this address (uninitialised, moved or copied memory?)\0",
        LSNN_ERR_INPUT_CHANNEL => "an input channel is >= n_in of the model\0",
        LSNN_ERR_INPUT_ORDER => {
            "the input channels of a step must be strictly increasing (sorted, no duplicates)\0"
        }
        LSNN_ERR_BUFFER_TOO_SMALL => "an output buffer is too short (spikes: up to n_rec; outputs: n_out)\0",
        LSNN_ERR_LENGTH => "a length is larger than the address space allows\0",
        LSNN_ERR_MODEL_MAGIC => "not an LSNN model (bad magic bytes): pass the bytes of a file written by lsnn-host export\0",
        LSNN_ERR_MODEL_VERSION => "model format version not supported by this build (it reads version 1)\0",
        LSNN_ERR_MODEL_TRUNCATED => "model truncated: the buffer is shorter than the model declares (pass the whole file)\0",
        LSNN_ERR_MODEL_CHECKSUM => "model checksum mismatch: the bytes were damaged (re-export or re-flash the model)\0",
        LSNN_ERR_MODEL_FORMAT => "model header or framing invalid (lsnn_model_error says which field)\0",
        LSNN_ERR_MODEL_SECTION => "model section misplaced, missing or of the wrong length (lsnn_model_error says which)\0",
        LSNN_ERR_MODEL_WEIGHT_KIND => "model weight kind not supported (0 = f32, 1 = i16, 2 = i8)\0",
        LSNN_ERR_MODEL_MATRIX => "model weight matrix framing or CSR offsets invalid (lsnn_model_error says where)\0",
        LSNN_ERR_MODEL_SYNAPSE => "model synapse invalid: target, delay or autapse (lsnn_model_error says which)\0",
        LSNN_ERR_MODEL_PARAMETER => "model parameter invalid (lsnn_model_error says which)\0",
        LSNN_ERR_MODEL_SIZE => "model size out of range (lsnn_model_error says which)\0",
        _ => "unknown status code (not returned by this version of lsnn-core's C API)\0",
    }
}

/// The message as a C string pointer.
pub(crate) fn message_ptr(status: lsnn_status) -> *const c_char {
    message(status).as_ptr().cast()
}

/// The message as text, without its NUL.
pub(crate) fn message_str(status: lsnn_status) -> &'static str {
    let m = message(status);
    m.strip_suffix('\0').unwrap_or(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of core error has a code of its own group, never OK or "unknown".
    #[test]
    fn every_core_error_has_a_code() {
        let errors = [
            CoreError::Length {
                what: "x",
                expected: 1,
                got: 2,
            },
            CoreError::Size {
                what: "x",
                value: 1,
                allowed: "y",
            },
            CoreError::Parameter {
                what: "x",
                why: "y",
            },
            CoreError::Synapse {
                matrix: "w",
                pre: 1,
                index: 2,
                why: "y",
            },
            CoreError::Capacity {
                what: "x",
                capacity: 1,
                required: 2,
            },
            CoreError::NeuronParameter {
                index: 1,
                what: "x",
                why: "y",
            },
            CoreError::BadMagic,
            CoreError::UnsupportedVersion { version: 9 },
            CoreError::Truncated {
                what: "x",
                needed: 1,
                got: 0,
            },
            CoreError::BadChecksum {
                stored: 1,
                computed: 2,
            },
            CoreError::Format {
                what: "x",
                why: "y",
            },
            CoreError::Section { id: 1, why: "y" },
            CoreError::SectionLength {
                id: 1,
                expected: 1,
                got: 2,
            },
            CoreError::UnsupportedSection { id: 9 },
            CoreError::UnsupportedWeightKind {
                matrix: "w",
                kind: 7,
            },
            CoreError::Matrix {
                matrix: "w",
                why: "y",
            },
            CoreError::CsrOffsets {
                matrix: "w",
                pre: 1,
                why: "y",
            },
        ];
        for code in (-2..40).chain([i32::MIN, i32::MAX]) {
            let m = message(code);
            assert_eq!(
                m.find('\0'),
                Some(m.len() - 1),
                "{code}: one NUL, at the end"
            );
        }
        for e in errors {
            let code = of_core(&e);
            assert!(
                (LSNN_ERR_MODEL_MAGIC..=LSNN_ERR_MODEL_SIZE).contains(&code),
                "{e}"
            );
            assert!(!message_str(code).contains("unknown"), "{e}");
        }
    }
}
