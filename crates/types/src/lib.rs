//! Shared vocabulary of Lathe.
//!
//! Every other crate speaks in these types: element types, tensors and signatures, references
//! to model versions, and the error kinds every surface maps to its status codes. The crate
//! stays tiny on purpose (serde and thiserror only) so that the engines, the registry and the
//! server can all depend on it without pulling each other in.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod dtype;
mod error;
mod model_ref;
mod signature;
mod tensor;

pub use dtype::{DType, ALL_DTYPES};
pub use error::{ApiError, ErrorKind, HasErrorKind};
pub use model_ref::{ModelRef, ModelRefError};
pub use signature::{Signature, TensorSignature};
pub use tensor::{Tensor, TensorData};
