//! bpftrace output.
