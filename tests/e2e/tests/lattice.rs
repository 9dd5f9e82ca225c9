//! The end-to-end test on a real lattice: added with run.sh, which starts what it needs.
