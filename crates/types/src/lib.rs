//! Shared vocabulary of Lathe.
//!
//! Every other crate speaks in these types: element types, tensor signatures and references
//! to model versions. The crate stays tiny on purpose (serde and thiserror only) so that the
//! engines, the registry and the server can all depend on it without pulling each other in.

mod dtype;
mod model_ref;
mod signature;

pub use dtype::DType;
pub use model_ref::{ModelRef, ModelRefError};
pub use signature::{Signature, TensorSignature};
