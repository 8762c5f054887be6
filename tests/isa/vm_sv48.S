// Sv48 virtual memory: permissions R/W/X/U for S and U, SUM, MXR, hardware A/D updates, 4 KiB,
// 2 MiB and 1 GiB pages (and 512 GiB from Sv48 on) with misaligned superpage faults, reserved
// encodings (W without R, reserved/PBMT/N bits, pointer at level 0), non-canonical addresses,
// sfence.vma, satp mode writes, delegated page faults and MPRV. See vm_body.h.
#define LEVELS 4
#define SATP_MODE 9
#include "vm_body.h"
