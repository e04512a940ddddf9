//! Shared support for the boot tests.
