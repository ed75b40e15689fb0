//! Files written whole or not at all: a temporary file, then a rename, so that a crash or a
//! stopped run never leaves a half-written file where a good one stood.

use std::path::Path;

use serde::Serialize;

use crate::error::HostError;

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), HostError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| HostError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes bytes to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let io = |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
