//! Kernel catalog.
