//! Training objectives. Adversarial losses are plain functions of D's raw outputs,
//! chosen by config through [`Objective`]; the trainer never branches on which one.

pub mod adversarial;
pub mod penalties;

pub use adversarial::{Objective, ObjectiveConfig, ObjectiveKind};
