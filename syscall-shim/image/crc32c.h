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

/* ---- Three crc32q chains at once -------------------------------------------------------
 * One crc32q chain is bound by the instruction's 3-cycle latency; it can start one per cycle.
 * Long buffers are taken in three equal blocks whose CRCs run interleaved, then joined: the CRC
 * register after A then B is shift(reg after A, |B| zero bytes) ^ (reg over B from 0), and the
 * shift by a fixed length is a linear map of the 32-bit register, kept as four byte tables
 * (the zlib crc32_combine construction, with the CRC-32C polynomial). */
#define KITE_CRC32C_LONG 8192u  /* block bytes in the long loop; a power of two */
#define KITE_CRC32C_SHORT 256u  /* ... in the short loop */

static inline uint32_t kite_crc32c_gf2_times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}

static inline void kite_crc32c_gf2_square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; n++) square[n] = kite_crc32c_gf2_times(mat, mat[n]);
}

/* The tables that shift a register over `len` zero bytes (a power of two). */
static inline void kite_crc32c_zeros(uint32_t zeros[4][256], size_t len) {
  uint32_t odd[32], even[32], *op = even;
  odd[0] = 0x82f63b78u; /* one zero bit */
  for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
  kite_crc32c_gf2_square(even, odd); /* two zero bits */
  kite_crc32c_gf2_square(odd, even); /* four */
  for (;;) {                        /* one zero byte, two, four, ... up to len */
    kite_crc32c_gf2_square(even, odd);
    op = even;
    if ((len >>= 1) == 0) break;
    kite_crc32c_gf2_square(odd, even);
    op = odd;
    if ((len >>= 1) == 0) break;
  }
  for (uint32_t n = 0; n < 256; n++) {
    for (int k = 0; k < 4; k++) zeros[k][n] = kite_crc32c_gf2_times(op, n << (8 * k));
  }
}

static inline uint32_t kite_crc32c_shift(const uint32_t zeros[4][256], uint32_t crc) {
  return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

struct kite_crc32c_tables {
  int state; /* 0 not built, 1 being built (by one caller; the others use one chain), 2 ready */
  uint32_t long_zeros[4][256], short_zeros[4][256];
};

/* The shift tables, or NULL while another thread builds them. Built once per program. */
static inline const struct kite_crc32c_tables* kite_crc32c_get_tables(void) {
  static struct kite_crc32c_tables t;
  int state = __atomic_load_n(&t.state, __ATOMIC_ACQUIRE);
  if (state == 2) return &t;
  if (state == 1) return NULL;
  int expected = 0;
  if (!__atomic_compare_exchange_n(&t.state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    return expected == 2 ? &t : NULL;
  }
  kite_crc32c_zeros(t.long_zeros, KITE_CRC32C_LONG);
  kite_crc32c_zeros(t.short_zeros, KITE_CRC32C_SHORT);
  __atomic_store_n(&t.state, 2, __ATOMIC_RELEASE);
  return &t;
}

static inline uint64_t kite_crc32c_word(uint64_t c, const unsigned char* p) {
  uint64_t w;
  __builtin_memcpy(&w, p, 8);
  __asm__("crc32q %1, %0" : "+r"(c) : "rm"(w));
  return c;
}

/* Three interleaved chains over blocks of `block` bytes while 3 * block remain. */
static inline uint64_t kite_crc32c_3way(uint64_t c0, const unsigned char** pp, size_t* np, size_t block,
                                        const uint32_t zeros[4][256]) {
  const unsigned char* p = *pp;
  size_t n = *np;
  while (n >= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    for (const unsigned char* end = p + block; p < end; p += 8) {
      c0 = kite_crc32c_word(c0, p);
      c1 = kite_crc32c_word(c1, p + block);
      c2 = kite_crc32c_word(c2, p + 2 * block);
    }
    c0 = kite_crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = kite_crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * block;
    n -= 3 * block;
  }
  *pp = p;
  *np = n;
  return c0;
}

static inline uint32_t kite_crc32c(uint32_t crc, const void* data, size_t n) {
  const unsigned char* p = (const unsigned char*)data;
  crc = ~crc;
  if (!kite_crc32c_have_hw()) return ~kite_crc32c_sw(crc, p, n);
  uint64_t c = crc;
  if (n >= 3 * KITE_CRC32C_SHORT) {
    const struct kite_crc32c_tables* t = kite_crc32c_get_tables();
    if (t != NULL) {
      c = kite_crc32c_3way(c, &p, &n, KITE_CRC32C_LONG, t->long_zeros);
      c = kite_crc32c_3way(c, &p, &n, KITE_CRC32C_SHORT, t->short_zeros);
    }
  }
  for (; n >= 8; n -= 8, p += 8) c = kite_crc32c_word(c, p);
  uint32_t c32 = (uint32_t)c;
  for (; n > 0; n--, p++) __asm__("crc32b %1, %0" : "+r"(c32) : "rm"(*p));
  return ~c32;
}

#endif /* KITE_SYSCALL_SHIM_IMAGE_CRC32C_H_ */
