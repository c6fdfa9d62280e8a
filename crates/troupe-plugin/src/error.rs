use std::path::PathBuf;

/// Why a plugin could not be loaded or called.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{}: {reason}\n  hint: {hint}", path.display())]
    Load {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    /// The call failed in the sandbox (trap, deadline, memory, output cap): the run goes on.
    #[error("{0}")]
    Call(String),
}
