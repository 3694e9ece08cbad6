/* kite-restore's library functions (see rlib.h). The loops are simple on purpose: the
 * compiler is told not to turn them back into calls to themselves (-fno-builtin +
 * -fno-tree-loop-distribute-patterns in CMakeLists.txt). */
#include "syscall-shim/restorer/rlib.h"

#include "syscall-shim/restorer/rsys.h"

void* memcpy(void* dst, const void* src, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  for (; n >= 8; n -= 8, d += 8, s += 8) {
    uint64_t w;
    __builtin_memcpy(&w, s, 8);
    __builtin_memcpy(d, &w, 8);
  }
  while (n--) *d++ = *s++;
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  while (n--) d[n] = s[n];
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  unsigned char* d = (unsigned char*)dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const unsigned char* x = (const unsigned char*)a;
  const unsigned char* y = (const unsigned char*)b;
  for (; n > 0; n--, x++, y++) {
    if (*x != *y) return *x < *y ? -1 : 1;
  }
  return 0;
}

size_t r_strlen(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  return n;
}

int r_streq(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) a++, b++;
  return *a == *b;
}

void r_msg(int fd, const char* a, const char* b, const char* c) {
  char line[1024];
  size_t n = 0;
  const char* parts[4] = {"kite-restore: ", a, b, c};
  for (int i = 0; i < 4; i++) {
    for (const char* p = parts[i]; p != NULL && *p != '\0' && n < sizeof line - 1; p++) line[n++] = *p;
  }
  line[n++] = '\n';
  rsys3(__NR_write, fd, line, n);
}

char* r_utoa(uint64_t v, char* buf) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
  return buf;
}

char* r_xtoa(uint64_t v, char* buf) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  buf[0] = '0';
  buf[1] = 'x';
  for (int i = 0; i < n; i++) buf[2 + i] = tmp[n - 1 - i];
  buf[2 + n] = '\0';
  return buf;
}

int r_parse_u64(const char* s, uint64_t* out) {
  uint64_t v = 0;
  if (*s == '\0') return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}
