//! # lsnn-host
//!
//! LSNN on a workstation: the fixture checker, and (as the issues land) the batched BPTT
//! trainer, DEEP R, the tasks and the `lsnn-host` command line.
#![forbid(unsafe_code)]
