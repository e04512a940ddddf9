# Long-mode CPU exception stubs: one per vector 0-31, each pushing a dummy
# error code where the CPU pushes none, then the vector number, then
# jumping to a common tail that calls the Rust reporter
# bootpack_exception(vector, error_code, rip) -> !.
#
# Relies on: interrupt gates built by exceptions.rs from bootpack_exc_table
# (selector 0x08, the 64-bit code segment of entry.s) and a usable stack
# (any RSP stage 2 runs on; the reporter halts, so nothing is returned to).

    .section .text.bootpack_exceptions, "ax"
    .code64

    .macro bootpack_exc_stub vec, err
bootpack_exc_\vec:
    .if \err == 0
    pushq   $0
    .endif
    pushq   $\vec
    jmp     bootpack_exc_common
    .endm

    # Vectors where the CPU pushes an error code: 8, 10-14, 17, 21, 29, 30.
    bootpack_exc_stub 0, 0
    bootpack_exc_stub 1, 0
    bootpack_exc_stub 2, 0
    bootpack_exc_stub 3, 0
    bootpack_exc_stub 4, 0
    bootpack_exc_stub 5, 0
    bootpack_exc_stub 6, 0
    bootpack_exc_stub 7, 0
    bootpack_exc_stub 8, 1
    bootpack_exc_stub 9, 0
    bootpack_exc_stub 10, 1
    bootpack_exc_stub 11, 1
    bootpack_exc_stub 12, 1
    bootpack_exc_stub 13, 1
    bootpack_exc_stub 14, 1
    bootpack_exc_stub 15, 0
    bootpack_exc_stub 16, 0
    bootpack_exc_stub 17, 1
    bootpack_exc_stub 18, 0
    bootpack_exc_stub 19, 0
    bootpack_exc_stub 20, 0
    bootpack_exc_stub 21, 1
    bootpack_exc_stub 22, 0
    bootpack_exc_stub 23, 0
    bootpack_exc_stub 24, 0
    bootpack_exc_stub 25, 0
    bootpack_exc_stub 26, 0
    bootpack_exc_stub 27, 0
    bootpack_exc_stub 28, 0
    bootpack_exc_stub 29, 1
    bootpack_exc_stub 30, 1
    bootpack_exc_stub 31, 0

bootpack_exc_common:
    movq    (%rsp), %rdi            # vector
    movq    8(%rsp), %rsi           # error code
    movq    16(%rsp), %rdx          # RIP of the faulting instruction
    andq    $-16, %rsp              # ABI stack alignment for the call
    call    bootpack_exception
bootpack_exc_halt:
    cli
    hlt
    jmp     bootpack_exc_halt

    .section .rodata.bootpack_exceptions, "a"
    .balign 8
    .global bootpack_exc_table
bootpack_exc_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad   bootpack_exc_\v
    .endr
