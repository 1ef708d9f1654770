//! Validation of model-written SQL. (In progress.)
