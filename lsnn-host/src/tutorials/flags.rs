//! Flag range checks shared by the tutorials; each error names the flag.

use crate::error::HostError;

fn error(flag: &str, message: String) -> HostError {
    HostError::Flag {
        flag: flag.to_string(),
        message,
    }
}

/// The error of a bad flag: which one and why.
pub fn bad<T>(flag: &str, message: String) -> Result<T, HostError> {
    Err(error(flag, message))
}

/// Every count must be >= 1.
pub fn at_least_one(flags: &[(&str, usize)]) -> Result<(), HostError> {
    match flags.iter().find(|(_, v)| *v == 0) {
        Some((flag, _)) => bad(flag, "must be >= 1".into()),
        None => Ok(()),
    }
}

/// Every value must be finite and > 0.
pub fn positive(flags: &[(&str, f64)]) -> Result<(), HostError> {
    match flags.iter().find(|(_, x)| !(x.is_finite() && *x > 0.0)) {
        Some((flag, x)) => bad(flag, format!("{x} must be a finite number > 0")),
        None => Ok(()),
    }
}

/// Every value must be finite and >= 0.
pub fn non_negative(flags: &[(&str, f64)]) -> Result<(), HostError> {
    match flags.iter().find(|(_, x)| !(x.is_finite() && *x >= 0.0)) {
        Some((flag, x)) => bad(flag, format!("{x} must be a finite number >= 0")),
        None => Ok(()),
    }
}
