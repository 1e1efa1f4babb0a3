//! Passes over a parsed program, one file each with one entry point.

pub mod print;
pub mod strip_annotations;
