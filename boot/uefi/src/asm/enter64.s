# bootpack_uefi_enter64(entry: u64 in RDI, info: u64 in RSI, magic: u64 in
# RDX) -> ! (System V ABI; declared extern "sysv64"): the Multiboot 2
# handoff to a kernel's EFI amd64 entry point (header tag 9) with boot
# services still running, as GRUB makes it: the firmware's 64-bit mode,
# paging, GDT, IDT and stack left as they are, EAX = magic, EBX = the
# information (below 4 GiB), jump to the entry.
#
# Relies on: `entry` being 64-bit code the kernel loaded; `info` below
# 4 GiB. Leaves: everything of the firmware's state but EAX and EBX.

    .text
    .code64
    .global bootpack_uefi_enter64
bootpack_uefi_enter64:
    movl    %edx, %eax
    movl    %esi, %ebx
    jmpq    *%rdi
