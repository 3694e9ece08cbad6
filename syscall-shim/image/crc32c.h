/* CRC-32C (Castagnoli), the checksum of kite images. Header-only, freestanding (no libc), for
 * the shim, kite-restore and the tests alike. Uses the SSE4.2 crc32 instruction when the CPU
 * has it (every x86_64 CPU since 2008), else a bitwise loop (correct, ~100x slower).
 * crc32c(0, p, n) is the CRC of n bytes; crc32c(crc32c(0, a, n), b, m) that of a then b. */
#ifndef KITE_SYSCALL_SHIM_IMAGE_CRC32C_H_
#define KITE_SYSCALL_SHIM_IMAGE_CRC32C_H_

#include <stddef.h>
#include <stdint.h>

static inline int kite_crc32c_have_hw(void) {
  static int cached = -1; /* written once; a race writes the same value */
  if (cached < 0) {
    uint32_t a = 1, b, c, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    cached = (c >> 20) & 1; /* CPUID.1:ECX.SSE4_2 */
  }
  return cached;
}

static inline uint32_t kite_crc32c_sw(uint32_t crc, const unsigned char* p, size_t n) {
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return crc;
}

static inline uint32_t kite_crc32c(uint32_t crc, const void* data, size_t n) {
  const unsigned char* p = (const unsigned char*)data;
  crc = ~crc;
  if (!kite_crc32c_have_hw()) return ~kite_crc32c_sw(crc, p, n);
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    __builtin_memcpy(&w, p, 8);
    __asm__("crc32q %1, %0" : "+r"(c) : "rm"(w));
  }
  uint32_t c32 = (uint32_t)c;
  for (; n > 0; n--, p++) __asm__("crc32b %1, %0" : "+r"(c32) : "rm"(*p));
  return ~c32;
}

#endif /* KITE_SYSCALL_SHIM_IMAGE_CRC32C_H_ */
