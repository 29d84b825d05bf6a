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
    #[error("non-finite {what} at step {step} ({value}); training stopped, the last good checkpoint is kept in {checkpoint_dir}")]
    NonFinite {
        what: String,
        step: u64,
        value: f64,
        checkpoint_dir: PathBuf,
    },
    /// A checkpoint or run directory is missing, corrupt or incompatible.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Filesystem error with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    /// JSON (de)serialization error.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
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
        matches!(
            self,
            GanError::Config { .. }
                | GanError::ConfigParse { .. }
                | GanError::Input(_)
                | GanError::Checkpoint { .. }
        )
    }
}

/// Attaches a path to an `std::io::Error`.
pub trait IoContext<T> {
    /// Converts the error into [`GanError::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| GanError::Io {
            path: path.into(),
            source,
        })
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, GanError>;
