//! The library's error type. Every fallible call returns [`Result`]; the CLI maps
//! [`GanError::is_user_error`] to exit code 2 and everything else to exit code 1.

use std::path::PathBuf;

/// Errors raised by ganlab.
#[derive(Debug, thiserror::Error)]
pub enum GanError {
    /// A configuration value is out of its allowed range; `field` is the dotted TOML path.
    #[error("invalid config: `{field}` {message}")]
    Config { field: String, message: String },
    /// A configuration file could not be parsed (syntax error or unknown field).
    #[error("invalid config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// Bad input given by the user (a file, a shape, an argument).
    #[error("{0}")]
    Input(String),
    /// A loss or statistic became NaN or infinite; training stopped.
    #[error("non-finite {what} at step {step} ({value}); training stopped: {kept}")]
    NonFinite {
        what: String,
        step: u64,
        value: f64,
        /// What is left to resume from, e.g. "the last good checkpoint (step 5) is kept in
        /// DIR", or that none was written yet.
        kept: String,
    },
    /// A checkpoint or run directory is missing, corrupt or incompatible.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Filesystem error with the path it happened on.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Tch(tch::TchError),
    /// Multi-process training: joining the group, or a collective, failed (a peer stopped,
    /// the rendezvous timed out).
    #[error("distributed: {0}")]
    Distributed(String),
    /// JSON (de)serialization error.
    #[error("json: {0}")]
    Json(serde_json::Error),
}

// The variants above print their cause in their own message, so they do not also expose it
// as `source()`: a reporter that walks the chain (`anyhow`'s `{:#}`) would print it twice.
impl From<tch::TchError> for GanError {
    fn from(e: tch::TchError) -> Self {
        match e {
            // safetensors displays its errors with `{:?}` (`IoError(Os { code: 28, … })`): a
            // failed write (full disk) is reported as the I/O error it is, with its path.
            tch::TchError::SafeTensorError {
                path,
                err: safetensors::SafeTensorError::IoError(error),
            } => GanError::Io {
                path: path.into(),
                error,
            },
            e => GanError::Tch(e),
        }
    }
}

impl From<serde_json::Error> for GanError {
    fn from(e: serde_json::Error) -> Self {
        GanError::Json(e)
    }
}

impl GanError {
    /// Shorthand for a [`GanError::Config`] error.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        GanError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True for errors caused by what the user gave us (exit code 2 in the CLI).
    pub fn is_user_error(&self) -> bool {
        match self {
            GanError::Config { .. }
            | GanError::ConfigParse { .. }
            | GanError::Input(_)
            | GanError::Checkpoint { .. } => true,
            // A path the user named that does not exist.
            GanError::Io { error, .. } => error.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Attaches a path to an `std::io::Error`.
pub trait IoContext<T> {
    /// Converts the error into [`GanError::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|error| GanError::Io {
            path: path.into(),
            error,
        })
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, GanError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause is printed once: in the message, not again as a `source()` in the chain.
    #[test]
    fn io_error_names_path_and_cause_once() {
        let e = std::fs::read("/nonexistent/ganlab")
            .at("/nonexistent/ganlab")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/nonexistent/ganlab: "), "{msg}");
        assert_eq!(msg.matches("os error 2").count(), 1, "{msg}");
        assert!(std::error::Error::source(&e).is_none());
        let t: GanError = tch::TchError::Kind("k".into()).into();
        assert!(std::error::Error::source(&t).is_none() && t.to_string().starts_with("libtorch: "));
    }

    /// Issue 18 item 14: a full disk during a checkpoint write reads as an I/O error with
    /// its path (was: `libtorch: safetensors error …: IoError(Os { code: 28, … })`).
    #[test]
    fn a_failed_safetensors_write_is_an_io_error() {
        let full = std::io::Error::from_raw_os_error(28);
        let e: GanError = tch::TchError::SafeTensorError {
            path: "/run/x.tmp".into(),
            err: safetensors::SafeTensorError::IoError(full),
        }
        .into();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/run/x.tmp: No space left on device"),
            "{msg}"
        );
        assert!(!msg.contains("Os {"), "{msg}");
        // On Linux, /dev/full is a full disk: the real write path says the same.
        #[cfg(target_os = "linux")]
        {
            let t = tch::Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
            let e: GanError = tch::Tensor::write_safetensors(&[("t", &t)], "/dev/full")
                .unwrap_err()
                .into();
            assert!(e.to_string().contains("No space left"), "{e}");
        }
    }
}
