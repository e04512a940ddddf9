//! bootpack::kernel::plan on arbitrary bytes: errors are fine, panics,
//! overflows and runaway allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootpack::kernel::plan(data);
    for protocol in [
        bootpack::Protocol::Multiboot1,
        bootpack::Protocol::Multiboot2,
    ] {
        let _ = bootpack::kernel::plan_for(data, Some(protocol));
    }
});
