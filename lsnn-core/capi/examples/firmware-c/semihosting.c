/* ARM semihosting calls (bkpt 0xAB, operation in r0, argument in r1). */
#include "semihosting.h"

#include <stdint.h>
#include <string.h>

enum { SYS_OPEN = 0x01, SYS_WRITE = 0x05, SYS_EXIT = 0x18 };
enum { ADP_STOPPED_APPLICATION_EXIT = 0x20026, ADP_STOPPED_RUNTIME_ERROR = 0x20023 };

static uintptr_t semihost(uintptr_t op, uintptr_t arg) {
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The console, opened once (":tt" in mode "w", as cortex-m-semihosting's hstdout does). */
static intptr_t console = -1;

int sh_write(const char *text, size_t len) {
    if (console < 0) {
        static const char tt[] = ":tt";
        uintptr_t open_args[3] = {(uintptr_t)tt, 4, sizeof tt - 1};
        console = (intptr_t)semihost(SYS_OPEN, (uintptr_t)open_args);
        if (console < 0) return -1;
    }
    uintptr_t args[3] = {(uintptr_t)console, (uintptr_t)text, len};
    return semihost(SYS_WRITE, (uintptr_t)args) == 0 ? 0 : -1;
}

int sh_puts(const char *text) { return sh_write(text, strlen(text)); }

void sh_exit(int code) {
    semihost(SYS_EXIT, code == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUNTIME_ERROR);
    for (;;) {
    }
}
