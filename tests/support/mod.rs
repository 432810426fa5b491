//! Shared by the integration tests: attach to the running testenv, per-test namespaces,
//! wait helpers with clear timeout messages, and emulator processes (moto server).
//! Each test file includes it with `mod support;`; not every file uses every part.
#![allow(dead_code)]

pub mod browser;
pub mod cmd;
pub mod crd;
pub mod dashboard;
pub mod dev;
pub mod e2e;
pub mod kms;
pub mod kube_env;
pub mod moto;
pub mod operator;
pub mod penv;
pub mod process;
pub mod proxy;
pub mod wait;
