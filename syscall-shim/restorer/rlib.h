/* kite-restore's few library functions: what the compiler may call (memcpy, memset, memmove,
 * memcmp) and message output to a file descriptor. Freestanding. */
#ifndef KITE_SYSCALL_SHIM_RESTORER_RLIB_H_
#define KITE_SYSCALL_SHIM_RESTORER_RLIB_H_

#include <stddef.h>
#include <stdint.h>

void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t r_strlen(const char* s);
int r_streq(const char* a, const char* b);

/* Messages: r_msg(fd, a, b, c) writes "kite-restore: " a b c "\n" (null parts skipped). */
void r_msg(int fd, const char* a, const char* b, const char* c);
/* Decimal / hex text of v into buf (>= 24 bytes); returns buf. */
char* r_utoa(uint64_t v, char* buf);
char* r_xtoa(uint64_t v, char* buf);
/* Parses a decimal unsigned number that fills the whole string; -1 if it does not. */
int r_parse_u64(const char* s, uint64_t* out);

#endif /* KITE_SYSCALL_SHIM_RESTORER_RLIB_H_ */
