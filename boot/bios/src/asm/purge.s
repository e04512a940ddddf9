
# End of a global_asm! block: forget the macros of asm/macros.s so the next
# block can define them again if it lands in the same assembly module.
.purgem LOAD_DATA_SEGMENTS
.purgem LEAVE_LONG_MODE
.purgem S1_MARK
