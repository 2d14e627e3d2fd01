//! What a caller may ask of an explanation, and its bounds.

use lathe_types::ApiError;

/// Integration steps of integrated gradients when not given.
pub const DEFAULT_STEPS: usize = 64;
/// Most integration steps a request may ask for.
pub const MAX_STEPS: usize = 256;
/// Most rows one request may explain.
pub const MAX_ROWS: usize = 64;

/// An attribution method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Integrated gradients from the baseline.
    IntegratedGradients,
    /// The absolute gradient at the input.
    Saliency,
    /// The output's drop when parts of the input are set to the baseline.
    Occlusion,
}

impl Method {
    /// The name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "integrated_gradients",
            Method::Saliency => "saliency",
            Method::Occlusion => "occlusion",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Method, ApiError> {
        match s {
            "integrated_gradients" => Ok(Method::IntegratedGradients),
            "saliency" => Ok(Method::Saliency),
            "occlusion" => Ok(Method::Occlusion),
            other => Err(ApiError::invalid(format!(
                "parameters.method: expected integrated_gradients, saliency or occlusion, got {other:?}"
            ))),
        }
    }
}

/// Which output is explained.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    /// The predicted class (a classifier), else the first output unit.
    #[default]
    Predicted,
    /// An output unit by index (a class index).
    Unit(usize),
    /// A class name, or an output's name.
    Name(String),
}

/// Options of an explanation request.
#[derive(Debug, Clone)]
pub struct Options {
    /// The method; `None`: integrated gradients when the engine has a backward pass, else
    /// occlusion.
    pub method: Option<Method>,
    /// Integration steps (integrated gradients), 1 to [`MAX_STEPS`].
    pub steps: usize,
    /// The explained output.
    pub target: Target,
    /// Occlusion window side in pixels for images (stride half of it).
    pub window: usize,
    /// When to give up (the caller's request timeout): checked between inference runs.
    pub deadline: Option<std::time::Instant>,
}

impl Default for Options {
    fn default() -> Self {
        Options { method: None, steps: DEFAULT_STEPS, target: Target::Predicted, window: 4, deadline: None }
    }
}

impl Options {
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(ApiError::invalid(format!("parameters.steps: expected 1 to {MAX_STEPS}, got {}", self.steps)));
        }
        if !(1..=64).contains(&self.window) {
            return Err(ApiError::invalid(format!("parameters.window: expected 1 to 64, got {}", self.window)));
        }
        Ok(())
    }
}

/// Deadline exceeded, as an error.
pub(crate) fn check_deadline(deadline: Option<std::time::Instant>) -> Result<(), ApiError> {
    match deadline {
        Some(d) if std::time::Instant::now() > d => Err(ApiError::new(
            lathe_types::ErrorKind::DeadlineExceeded,
            "the explanation ran out of time; ask for fewer rows or steps",
        )),
        _ => Ok(()),
    }
}
