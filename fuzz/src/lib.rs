//! Fuzz targets for parity-operator's parsers (docs/testing.md, "Fuzzing").
pub mod targets;
