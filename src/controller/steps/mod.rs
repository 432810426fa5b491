//! The steps of one reconcile, in the order reconcile.rs runs them. Each does its I/O and
//! returns what the next needs; the pure parts (validation, builders, conditions, the
//! mirror's evaluation) live outside controller/.

pub mod apply;
pub mod build;
pub mod create_once;
pub mod fetch;
pub mod keys;
pub mod lifecycle;
pub mod observe;
pub mod secrets;
pub mod status;

#[cfg(test)]
mod tests;
