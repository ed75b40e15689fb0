/* Output and exit over ARM semihosting (QEMU: -semihosting-config enable=on,target=native). */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

#include <stddef.h>

/* Writes `len` bytes to the host's console; returns 0 on success. */
int sh_write(const char *text, size_t len);
/* Writes a NUL-terminated string; returns 0 on success. */
int sh_puts(const char *text);
/* Ends the program: QEMU exits with status 0 when `code` is 0, 1 otherwise. */
void sh_exit(int code) __attribute__((noreturn));

#endif
