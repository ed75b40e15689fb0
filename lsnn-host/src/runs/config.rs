//! `--config FILE.toml`: flags from a file, overridden by the flags given on the command line.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::HostError;

/// Expands `--config FILE` into the file's flags, placed before every flag of the command line
/// so that the command line wins (the training commands let a later flag override an earlier
/// one). Keys are flag names, with `_` or `-`.
pub fn expand_config_args(argv: Vec<OsString>) -> Result<Vec<OsString>, HostError> {
    let Some(path) = config_path(&argv) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| HostError::Io {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| HostError::Flag {
        flag: format!("--config {}", path.display()),
        message: format!("not valid TOML: {}", e.message()),
    })?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(HostError::Flag {
                    flag: format!("--config {}", path.display()),
                    message: format!(
                        "key `{key}` has a {} value; use a string, number or boolean",
                        other.type_str()
                    ),
                })
            }
        };
        flags.push(OsString::from(format!(
            "--{}={text}",
            key.replace('_', "-")
        )));
    }
    let first_flag = argv
        .iter()
        .skip(1)
        .position(|a| a.to_string_lossy().starts_with('-'))
        .map_or(argv.len(), |p| p + 1);
    let mut out = argv[..first_flag].to_vec();
    out.extend(flags);
    out.extend_from_slice(&argv[first_flag..]);
    Ok(out)
}

fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_flags_come_first_so_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "n_iter = 7\nlearning-rate = 0.5\nmodel = \"LIF\"\n").unwrap();
        let argv: Vec<OsString> = [
            "lsnn-host",
            "train",
            "store-recall",
            "--n-iter",
            "3",
            "--config",
        ]
        .iter()
        .map(OsString::from)
        .chain([file.clone().into_os_string()])
        .collect();
        let out: Vec<String> = expand_config_args(argv)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(&out[..3], ["lsnn-host", "train", "store-recall"]);
        let pos = |s: &str| out.iter().position(|a| a == s).unwrap();
        assert!(pos("--n-iter=7") < pos("--n-iter"));
        assert!(out.contains(&"--learning-rate=0.5".to_string()));
        assert!(out.contains(&"--model=LIF".to_string()));
    }

    #[test]
    fn unreadable_or_invalid_config_is_a_clear_error() {
        let missing = vec![
            OsString::from("x"),
            "--config".into(),
            "/nonexistent.toml".into(),
        ];
        assert!(matches!(
            expand_config_args(missing),
            Err(HostError::Io { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "n_iter = [1, 2]\n").unwrap();
        let argv = vec![
            OsString::from("x"),
            "--config".into(),
            file.into_os_string(),
        ];
        let err = expand_config_args(argv).unwrap_err().to_string();
        assert!(err.contains("n_iter") && err.contains("array"), "{err}");
    }
}
