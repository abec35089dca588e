//! Image lifecycle tools: resolve OCI image tags to immutable deploy facts,
//! record what runs where, show overviews and clean up registries by digest.
//!
//! All logic lives in this library; the binaries in `src/bin/` only parse
//! arguments, call it, and map the result to an exit status.

pub mod ansible;
pub mod atomic;
pub mod ci_metadata;
pub mod cleanup;
pub mod cli;
pub mod credentials;
pub mod deploy_info;
pub mod deploy_state;
pub mod facts;
pub mod fixture;
pub mod human;
pub mod image;
pub mod listing;
pub mod metadata;
pub mod overview;
pub mod policy;
pub mod prune;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod untag;
pub mod yaml_scalar;
