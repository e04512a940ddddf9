//! Relocatable Multiboot 2 kernels (header tag 10): where the image goes.
//!
//! GRUB 2.06 relocates every kernel with the tag, whether or not its link
//! address is free, to the lowest (or with preference "high" the highest)
//! place the tag allows (bootpack_proto::rebase says how and why); this
//! loader does the same, so a kernel lands where it lands under GRUB
//! EFI. Kernels without the tag, and Multiboot 1 kernels, load at their
//! link addresses as before.

use crate::efi_entry;
use crate::fail;
use crate::load;
use bootpack_proto::efimap;
use bootpack_proto::rebase::{self, NoBase, Shift, Span};
use bootpack_proto::record::{Protocol, Record};

/// The move from the kernel's link addresses to where it is loaded.
///
/// First in memory free now (conventional memory, as GRUB's relocator
/// looks first); if nothing fits there, for a kernel that lets the loader
/// exit boot services, in memory free once they have exited (the segments
/// over boot-services memory are then staged and moved into place by the
/// trampoline, as for any kernel). A kernel entered with boot services
/// running gets memory free now only, as GRUB (its
/// `avoid_efi_boot_services`).
pub fn shift(rec: &Record) -> Shift {
    let Some(tag) = rec.efi().relocatable else {
        return Shift::NONE;
    };
    if rec.protocol() != Protocol::Multiboot2 {
        return Shift::NONE;
    }
    let Some(span) = Span::of(
        rec.segments()
            .filter(|s| s.mem_size > 0)
            .map(|s| (s.dest, s.end())),
    ) else {
        return Shift::NONE;
    };
    let mut found = rebase::choose(span, &tag, &load::free_map());
    if matches!(found, Err(NoBase::NoFit { .. })) && efi_entry::entry64(rec).is_none() {
        found = rebase::choose(
            span,
            &tag,
            &load::converted_map(|r, out| efimap::free_later(r, out)),
        );
    }
    match found {
        Ok(base) => Shift::new(span.start, base),
        Err(NoBase::Range { size, min, max }) => fail!(
            "the kernel's relocatable tag allows {min:#x}-{max:#x}, too small for its {size:#x}-byte image: fix the kernel's Multiboot 2 header"
        ),
        Err(NoBase::NoFit {
            size,
            min,
            max,
            align,
        }) => fail!(
            "no free memory holds the relocatable kernel ({size:#x} bytes at a multiple of {align:#x} between {min:#x} and {max:#x}): give the machine more memory"
        ),
    }
}
