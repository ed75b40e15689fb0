/* Cortex-M4F start-up for QEMU mps2-an386: vector table, FPU on, .data and .bss, main. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "semihosting.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];
int main(void);

void reset_handler(void) __attribute__((noreturn));

/* Any fault ends the run with a failure (QEMU exits 1). */
static void fault_handler(void) { sh_exit(1); }

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, reset_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler,
    fault_handler,
};

void reset_handler(void) {
    /* CP10 and CP11 full access (the FPU), before any float instruction. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;) *dst++ = 0;
    sh_exit(main());
}

/* No heap: newlib's formatting functions link against sbrk but do not need it for snprintf
   into a buffer; a call would fail cleanly instead of growing into the network's arena. */
void *_sbrk(ptrdiff_t increment) {
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}
