//! `bootpack-proto`: the firmware-neutral boot core as a `no_std` crate for
//! the loaders (boot/bios, boot/uefi). Its source is the `proto` module of
//! the packager (packager/src/proto), where the published `bootpack` crate
//! carries it and its unit tests run on the host; see that module's
//! documentation.
#![no_std]
#![forbid(unsafe_code)]

#[path = "../../../packager/src/proto/mod.rs"]
mod proto;

pub use proto::*;
