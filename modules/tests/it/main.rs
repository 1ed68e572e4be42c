//! The one integration-test binary of n2d-modules (one file per behaviour).
mod support;

mod deployments;
mod errors;
mod examples;
mod interpolation;
mod labels;
mod listings;
mod merge;
mod options_reference;
mod parsing;
mod priorities;
mod properties;
mod workspace;
