//! Output formats: every format bootpack writes is checked with qemu-img,
//! GNU tar and Python's tarfile against the raw image.
