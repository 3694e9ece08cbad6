/* Validation of a kite checkpoint image (image_format.h) before anything acts on it.
 *
 * Pure functions, freestanding C (no libc, no allocation, no system calls): kite-restore runs
 * them before it touches its own address space, and the unit tests fuzz them with truncated,
 * bit-flipped and random images. They never read outside what `at` returns and never trust a
 * count or an offset before checking it; an image they accept satisfies every bound and
 * ordering rule that docs/image-format.md states, so the restorer can use it without further
 * checks (page-run checksums excepted: they are verified as each run is loaded). */
#ifndef KITE_SYSCALL_SHIM_IMAGE_IMAGE_VALIDATE_H_
#define KITE_SYSCALL_SHIM_IMAGE_IMAGE_VALIDATE_H_

#include <stddef.h>
#include <stdint.h>

#include "syscall-shim/image/image_format.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the image's parts are, once validated. Pointers point into what `at` returned. */
struct kite_img_view {
  const struct kite_img_header* header;
  const struct kite_img_process* process;
  const struct kite_img_region* regions;
  uint64_t nregions;
  const struct kite_img_page_run* runs;
  uint64_t nruns;
  const struct kite_img_fd* fds;
  uint64_t nfds;
  const struct kite_img_siginfo* pending;
  uint64_t npending;
  const char* strings;
  uint64_t strings_size;
  uint64_t page_data_offset;
  uint64_t page_data_size;
};

/* A human-readable reason, e.g. "regions[3]: overlaps regions[2]". Always NUL-terminated. */
struct kite_img_error {
  char msg[200];
};

/* Returns a pointer to `len` bytes of the image at file offset `off`, 8-byte aligned, or NULL
 * when that range is not available. Called only for ranges inside the file. */
typedef const void* (*kite_img_at_fn)(void* ctx, uint64_t off, uint64_t len);

/* Validates the whole image except the page data's contents: header, section table, every
 * metadata section's checksum and contents, and the consistency between them (regions sorted
 * and disjoint, page runs inside their regions and inside the page data, strings terminated,
 * addresses the process state names inside suitable regions). `file_size` is the real size of
 * the image file. Returns 0 and fills *view, or -1 and fills *err (view is then unspecified). */
int kite_img_validate(uint64_t file_size, kite_img_at_fn at, void* ctx,
                      struct kite_img_view* view, struct kite_img_error* err);

/* A string of a validated view (kite_img_str), or "" when absent. */
const char* kite_img_string(const struct kite_img_view* view, struct kite_img_str s);

/* 0 when no region of a validated view overlaps [start, end), else -1 and *err names it. */
int kite_img_range_free(const struct kite_img_view* view, uint64_t start, uint64_t end,
                        struct kite_img_error* err);

/* The same for an image held whole in memory (tests, tools). */
int kite_img_validate_buffer(const void* image, uint64_t size, struct kite_img_view* view,
                             struct kite_img_error* err);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* KITE_SYSCALL_SHIM_IMAGE_IMAGE_VALIDATE_H_ */
