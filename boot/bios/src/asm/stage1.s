# Stage 1: the MBR boot code (16-bit real mode, linked at 0x7C00).
#
# Relies on: the BIOS loading this sector at 0000:7C00 or 07C0:0000 and
# jumping to it with DL = boot drive (the BIOS Boot Specification; a DL
# below 0x80 is taken as 0x80, the first hard disk); INT 13h
# on that drive, with the extensions (AH=41h/42h) or else CHS reads
# (AH=02h) and the drive geometry (AH=08h); the packager having patched the
# three fields at 0x1AC-0x1B3 (bootpack_proto::stage1) with stage 2's LBA,
# its length in sectors and the 16-bit word sum of those sectors.
#
# It reads stage 2 to 0x7E00 (in one extended read, or one CHS read per
# sector on a BIOS without the extensions), checks the sum and jumps to it
# with DL = drive. On any failure it prints one line on the screen (INT 10h)
# and COM1 and halts forever; it never reboots.
#
# The partition table (0x1BE) and disk signature (0x1B8) are the packager's
# business: only the first 440 bytes of this sector go into the MBR. The
# 0xAA55 at 510 makes the sector bootable on its own too.

    .section .stage1, "awx"
    .code16
    .global stage1_start
stage1_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    $0x7C00, %sp            # memplan::REAL_STACK_TOP
    ljmp    $0, $s1_normalised      # CS:IP = 0000:7Cxx whatever the BIOS used
s1_normalised:
    sti
    cld
    # A hard disk's BIOS number is 0x80-0xFF. Some BIOSes and emulators
    # start the MBR with another DL (0 has been seen): this sector is only
    # ever on a hard disk, and the first one is the one a BIOS boots.
    testb   %dl, %dl
    js      s1_drive_ok
    movb    $0x80, %dl
s1_drive_ok:
    movb    %dl, s1_drive
    S1_MARK 0                       # handed over (timestamps builds)
.if BOOTPACK_TS
    movb    s1_drive, %dl           # the mark took EDX; AH=41h needs DL
.endif

    # A sector count outside 1..=127 means the fields were not patched (or
    # the sector is damaged): do not read garbage over memory.
    movw    s1_stage2_sectors, %cx
    testw   %cx, %cx
    jz      s1_damaged
    cmpw    $127, %cx
    ja      s1_damaged
    movw    %cx, s1_left

    # INT 13h extensions present, with the packet interface (CX bit 0)?
    movb    $0x41, %ah
    movw    $0x55AA, %bx
    int     $0x13
    jc      s1_chs
    cmpw    $0xAA55, %bx
    jne     s1_chs
    testb   $1, %cl
    jnz     s1_start

s1_chs:
    # No extensions: read by CHS (AH=02h) one sector per call, which never
    # spans a track nor a 64 KiB boundary (0x7E00 + n * 512 meets 0x10000
    # only between sectors), with the geometry from AH=08h. Without that
    # either, stage 2 cannot be read.
    movb    $0x08, %ah
    movb    s1_drive, %dl
    xorw    %di, %di                # ES:DI = 0:0 guards against BIOS bugs
    int     $0x13
    jc      s1_read_failed
    andw    $0x3F, %cx              # sectors per track (0 = unusable)
    jz      s1_read_failed
    movw    %cx, s1_spt             # non-zero: the CHS path
    movb    %dh, %cl                # heads = last head + 1, up to 256
    incw    %cx
    movw    %cx, s1_heads

s1_start:
    # Stage 2 sits after the space a GPT takes (layout::STAGE2_LBA, 34):
    # its LBAs fit 16 bits and are below 161, so the CHS arithmetic is
    # 16-bit and the cylinder is below 256.
    S1_MARK 1                       # reading stage 2
    movw    s1_stage2_lba, %ax
    movw    %ax, s1_dap_lba
s1_next:
    movb    $3, s1_tries
s1_read:
    movw    s1_spt, %cx
    jcxz    s1_read_ext
    movw    s1_dap_lba, %ax         # LBA -> cylinder, head, sector
    xorw    %dx, %dx
    divw    %cx                     # AX = LBA / spt, DX = LBA % spt
    movw    %dx, %cx
    incw    %cx                     # CL = sector (1-based)
    xorw    %dx, %dx
    divw    s1_heads                # AX = cylinder, DX = head
    movb    %dl, %dh
    movb    %al, %ch
    movw    s1_dap_seg, %es
    xorw    %bx, %bx
    movw    $0x0201, %ax            # read 1 sector to ES:BX
    jmp     s1_int13
s1_read_ext:
    # The BIOS may write the count of sectors actually read back into the
    # packet on failure: set it again on every try.
    movw    s1_stage2_sectors, %ax
    movw    %ax, s1_dap_count
    movw    $s1_dap, %si
    movb    $0x42, %ah
s1_int13:
    movb    s1_drive, %dl
    int     $0x13
    jnc     s1_read_ok
    decb    s1_tries
    jz      s1_read_failed
    xorb    %ah, %ah                # reset the disk system, then retry
    movb    s1_drive, %dl
    int     $0x13
    jmp     s1_read

s1_read_ok:
    # The extended read got everything; CHS goes on to the next sector.
    movw    s1_spt, %cx
    jcxz    s1_sum
    incw    s1_dap_lba
    addw    $0x20, s1_dap_seg       # 512 bytes further
    decw    s1_left
    jnz     s1_next

s1_sum:
    S1_MARK 2                       # stage 2 read
    # 16-bit word sum over the whole sectors read. Stage 2 may span more
    # than 64 KiB of offsets from 0x7E00, so step DS one sector at a time.
    movw    s1_stage2_sectors, %bp
    movw    $0x07E0, %bx
    xorw    %dx, %dx
s1_sum_sector:
    movw    %bx, %ds
    xorw    %si, %si
    movw    $256, %cx
s1_sum_word:
    lodsw
    addw    %ax, %dx
    loop    s1_sum_word
    addw    $0x20, %bx
    decw    %bp
    jnz     s1_sum_sector
    pushw   %cs                     # CS = 0 since s1_normalised
    popw    %ds
    cmpw    s1_stage2_sum, %dx
    jne     s1_damaged

    movb    s1_drive, %dl
    ljmp    $0, $0x7E00             # memplan::STAGE2_ADDR

s1_read_failed:
    movw    $s1_msg_read, %si
    jmp     s1_fail
s1_damaged:
    movw    $s1_msg_damaged, %si
s1_fail:
    # Minimal COM1 set-up: 115200 baud (divisor 1), 8N1, FIFO on. Only done
    # on failure, so a successful boot never touches the port here. (Byte
    # by byte the smallest forms: stage 1 has few bytes to spare.)
    movw    $0x3F9, %dx
    xorb    %al, %al
    outb    %al, %dx                # IER = 0
    incw    %dx
    incw    %dx
    movb    $0x80, %al
    outb    %al, %dx                # LCR = DLAB
    movb    $0xF8, %dl
    movb    $1, %al
    outb    %al, %dx                # DLL = 1
    incw    %dx
    decw    %ax                     # AL = 0 (no borrow from AL = 1)
    outb    %al, %dx                # DLM = 0
    incw    %dx
    incw    %dx
    movb    $3, %al
    outb    %al, %dx                # LCR = 8N1
    decw    %dx
    movb    $0xC7, %al
    outb    %al, %dx                # FCR: FIFO on, cleared
    pushw   %si
    movw    $s1_msg_prefix, %si
    call    s1_puts
    popw    %si
    call    s1_puts
s1_halt:
    cli
    hlt
    jmp     s1_halt

# Prints the NUL-terminated string at DS:SI on the screen and COM1.
s1_puts:
    lodsb
    testb   %al, %al
    jz      s1_puts_done
    pushw   %ax
    movb    $0x0E, %ah              # teletype output
    movw    $0x0007, %bx
    int     $0x10
    movw    $0x3FD, %dx
s1_wait_thr:
    inb     %dx, %al                # a missing UART reads 0xFF: no hang
    testb   $0x20, %al
    jz      s1_wait_thr
    popw    %ax
    movb    $0xF8, %dl
    outb    %al, %dx
    jmp     s1_puts
s1_puts_done:
    ret

s1_msg_prefix:  .asciz "bootpack: "
s1_msg_read:    .asciz "stage 2 read failed\r\n"
s1_msg_damaged: .asciz "stage 2 damaged\r\n"

s1_drive:       .byte 0
s1_tries:       .byte 0
s1_left:        .word 0                 # CHS: sectors still to read
s1_spt:         .word 0                 # CHS: sectors per track; 0: AH=42h
s1_heads:       .word 0                 # CHS: heads
    .balign 4
# INT 13h AH=42h disk address packet. The buffer is 07E0:0000 (= 0x7E00)
# rather than 0000:7E00 so that 127 sectors never wrap the 16-bit offset.
s1_dap:         .byte 0x10, 0
s1_dap_count:   .word 0
                .word 0x0000
s1_dap_seg:     .word 0x07E0
s1_dap_lba:     .long 0, 0
s1_code_end:

# The fields the packager patches (bootpack_proto::stage1), with the
# placeholders it checks before patching.
    .org 0x1AC
s1_stage2_lba:      .long 0xB007B007    # PLACEHOLDER_LBA
s1_stage2_sectors:  .word 0x5EC7        # PLACEHOLDER_SECTORS
s1_stage2_sum:      .word 0x5A5A        # PLACEHOLDER_SUM
    .org 510
    .word 0xAA55
