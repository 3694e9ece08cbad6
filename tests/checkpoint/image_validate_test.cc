// Fuzz-style tests of the image validator (syscall-shim/image/image_validate.c) on a real
// image: truncations, bit flips, random bytes, targeted hostile edits with valid checksums, and
// random edits with valid checksums checked against an independent re-statement of the rules.
// Then kite-restore itself on a few hostile images: clear message, exit code, never runs them.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/image/crc32c.h"
#include "syscall-shim/image/image_format.h"
#include "syscall-shim/image/image_validate.h"
#include "syscall-shim/restorer/restorer.h"
#include "tests/checkpoint/ckpt_harness.h"

namespace kite::testing {
namespace {

using Bytes = std::vector<uint8_t>;

// An image whose buffer is 8-aligned (as the restorer's mapping is).
struct Image {
  std::vector<uint64_t> words;
  size_t size = 0;
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(words.data()); }
  void Assign(const uint8_t* p, size_t n) {
    words.assign((n + 7) / 8 + 1, 0);
    memcpy(data(), p, n);
    size = n;
  }
  kite_img_header* header() { return reinterpret_cast<kite_img_header*>(data()); }
  kite_img_section* section(uint32_t type) {
    for (auto& s : header()->sections) {
      if (s.type == type) return &s;
    }
    return nullptr;
  }
  template <typename T>
  T* entries(uint32_t type) { return reinterpret_cast<T*>(data() + section(type)->offset); }
  // Recomputes every checksum, as a hostile writer would.
  void Reseal() {
    for (auto& s : header()->sections) {
      if (s.type != KITE_SEC_NONE && s.type != KITE_SEC_PAGE_DATA && s.offset <= size &&
          s.size <= size - s.offset) {
        s.crc = kite_crc32c(0, data() + s.offset, s.size);
      }
    }
    header()->header_crc = 0;
    header()->header_crc = kite_crc32c(0, header(), sizeof(kite_img_header));
  }
};

int Validate(const Image& img, std::string* msg = nullptr) {
  kite_img_view view;
  kite_img_error err;
  int rc = kite_img_validate_buffer(img.data(), img.size, &view, &err);
  if (msg != nullptr) *msg = err.msg;
  return rc;
}

class ImageValidateTest : public ::testing::Test {
 protected:
  // One real image for the whole suite: a subject with heap, files and signals, checkpointed.
  static void SetUpTestSuite() {
    harness_ = new CkptHarness();
    pid_t pid = harness_->StartSubject({"counter", "heap", "signals", "pending", "file", "mmap"}, {});
    ASSERT_GT(pid, 0);
    image_path_ = harness_->Checkpoint(pid, KITE_CKPT_EXIT);
    ASSERT_EQ(image_path_.substr(image_path_.size() - 4), ".img") << image_path_;
    harness_->Wait(pid);
    std::ifstream in(image_path_, std::ios::binary);
    Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    pristine_.Assign(bytes.data(), bytes.size());
  }
  static void TearDownTestSuite() {
    delete harness_;
    harness_ = nullptr;
  }
  void SetUp() override { ASSERT_GT(pristine_.size, 0u); }

  // The byte ranges the checksums cover: the header and every metadata section.
  static std::vector<std::pair<size_t, size_t>> Covered(Image& img) {
    std::vector<std::pair<size_t, size_t>> r = {{0, sizeof(kite_img_header)}};
    for (auto& s : img.header()->sections) {
      if (s.type != KITE_SEC_NONE && s.type != KITE_SEC_PAGE_DATA) r.push_back({s.offset, s.offset + s.size});
    }
    return r;
  }

  static CkptHarness* harness_;
  static std::string image_path_;
  static Image pristine_;
};

CkptHarness* ImageValidateTest::harness_ = nullptr;
std::string ImageValidateTest::image_path_;
Image ImageValidateTest::pristine_;

TEST(Crc32c, KnownAnswerOnBothPaths) {
  const char* s = "123456789";
  EXPECT_EQ(kite_crc32c(0, s, 9), 0xe3069283u);
  EXPECT_EQ(~kite_crc32c_sw(~0u, reinterpret_cast<const unsigned char*>(s), 9), 0xe3069283u);
  // Chaining equals one pass.
  EXPECT_EQ(kite_crc32c(kite_crc32c(0, s, 4), s + 4, 5), 0xe3069283u);
}

// The interleaved chains (long and short blocks, then one chain) against the bitwise loop, at
// lengths around every block boundary and at odd alignments, whole and chained.
TEST(Crc32c, InterleavedChainsEqualTheBitwiseLoop) {
  std::vector<unsigned char> buf(3 * KITE_CRC32C_LONG * 2 + 3 * KITE_CRC32C_SHORT * 3 + 64);
  uint32_t x = 12345;
  for (unsigned char& c : buf) c = static_cast<unsigned char>((x = x * 1103515245u + 12345u) >> 16);
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 767, 768, 769, 3 * KITE_CRC32C_SHORT * 2 + 5, 24575, 24576, 24577,
                                 3 * KITE_CRC32C_LONG * 2, buf.size() - 3};
  for (size_t len : lengths) {
    for (size_t align : {0, 1, 3}) {
      const unsigned char* p = buf.data() + align;
      const uint32_t want = ~kite_crc32c_sw(~0u, p, len);
      EXPECT_EQ(kite_crc32c(0, p, len), want) << "length " << len << " alignment " << align;
      const size_t half = len / 3;
      EXPECT_EQ(kite_crc32c(kite_crc32c(0, p, half), p + half, len - half), want) << "chained, length " << len;
    }
  }
}

TEST_F(ImageValidateTest, RealImageIsValid) {
  std::string msg;
  EXPECT_EQ(Validate(pristine_, &msg), 0) << msg;
  kite_img_view view;
  kite_img_error err;
  ASSERT_EQ(kite_img_validate_buffer(pristine_.data(), pristine_.size, &view, &err), 0);
  EXPECT_GT(view.nregions, 5u);
  EXPECT_GT(view.nruns, 0u);
  EXPECT_GE(view.nfds, 4u);       // stdin, stdout, stderr, counter, data
  EXPECT_EQ(view.npending, 3u);   // SIGUSR2 + two queued SIGRTMIN+3
  // Zero pages are skipped: the 64 MiB sparse mapping costs two pages, not 16384.
  EXPECT_LT(pristine_.size, size_t{16} << 20);
}

TEST_F(ImageValidateTest, EveryTruncationIsRejected) {
  size_t meta_start = pristine_.size;
  Image img = pristine_;
  for (auto& s : img.header()->sections) {
    if (s.type != KITE_SEC_NONE && s.type != KITE_SEC_PAGE_DATA) meta_start = std::min<size_t>(meta_start, s.offset);
  }
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 8192; ++n) lengths.push_back(n);
  for (size_t n = meta_start > 64 ? meta_start - 64 : 0; n < pristine_.size; ++n) lengths.push_back(n);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) lengths.push_back(rng() % pristine_.size);
  for (size_t n : lengths) {
    Image t;
    t.Assign(pristine_.data(), n);
    std::string msg;
    ASSERT_NE(Validate(t, &msg), 0) << "accepted a truncation to " << n << " bytes";
    ASSERT_FALSE(msg.empty());
  }
  // Even with the header's file size patched to match, a cut in the metadata is caught.
  for (size_t n = meta_start; n < pristine_.size; n += 7) {
    Image t;
    t.Assign(pristine_.data(), n);
    t.header()->file_size = n;
    t.Reseal();
    ASSERT_NE(Validate(t), 0) << "accepted a resealed truncation to " << n;
  }
}

TEST_F(ImageValidateTest, EveryBitFlipInCheckedBytesIsRejected) {
  Image img = pristine_;
  size_t flips = 0;
  for (auto [begin, end] : Covered(img)) {
    for (size_t byte = begin; byte < end; ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        img.data()[byte] ^= uint8_t(1u << bit);
        ASSERT_NE(Validate(img), 0) << "accepted a flip of bit " << bit << " at byte " << byte;
        img.data()[byte] ^= uint8_t(1u << bit);
        ++flips;
      }
    }
  }
  EXPECT_GT(flips, 10000u);
  EXPECT_EQ(Validate(img), 0);
}

TEST_F(ImageValidateTest, RandomBytesAreRejected) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 3000; ++i) {
    size_t n = rng() % 20000;
    Bytes junk(n);
    for (auto& b : junk) b = uint8_t(rng());
    if (n >= sizeof(kite_img_header) && i % 2 == 0) {
      memcpy(junk.data(), pristine_.data(), 16);  // a valid magic and version
    }
    Image img;
    img.Assign(junk.data(), n);
    if (i % 4 == 0 && n >= sizeof(kite_img_header)) {
      img.header()->file_size = n;
      img.Reseal();
    }
    ASSERT_NE(Validate(img), 0) << "accepted random image " << i;
  }
}

// Hostile edits with every checksum recomputed: the validator must catch each by its rules.
struct Edit {
  const char* name;
  std::function<void(Image&)> apply;
  const char* expect;  // substring of the message
};

TEST_F(ImageValidateTest, HostileEditsWithValidChecksumsAreRejected) {
  std::vector<Edit> edits = {
      {"wrong version", [](Image& i) { i.header()->version = 2; }, "unsupported version"},
      {"bad magic", [](Image& i) { i.header()->magic[0] = 'X'; }, "bad magic"},
      {"overlapping regions",
       [](Image& i) {
         auto* r = i.entries<kite_img_region>(KITE_SEC_REGIONS);
         r[1].start = r[0].start;
       },
       "overlaps"},
      {"unsorted regions",
       [](Image& i) {
         auto* r = i.entries<kite_img_region>(KITE_SEC_REGIONS);
         std::swap(r[0], r[1]);
       },
       "regions["},
      {"region beyond user space",
       [](Image& i) {
         auto n = i.section(KITE_SEC_REGIONS)->count;
         i.entries<kite_img_region>(KITE_SEC_REGIONS)[n - 1].end = 0xffffffffff601000ull;
       },
       "outside user space"},
      {"unaligned region", [](Image& i) { i.entries<kite_img_region>(KITE_SEC_REGIONS)[0].start += 1; }, "page-aligned"},
      {"absurd region count", [](Image& i) { i.section(KITE_SEC_REGIONS)->count = uint64_t{1} << 40; }, "absurd count"},
      {"count/size mismatch", [](Image& i) { i.section(KITE_SEC_FDS)->count += 1; }, "size is not count"},
      {"section past end", [](Image& i) { i.section(KITE_SEC_STRINGS)->offset = i.size; }, "section"},
      {"overlapping sections",
       [](Image& i) { i.section(KITE_SEC_FDS)->offset = i.section(KITE_SEC_REGIONS)->offset; },
       "overlap"},
      {"duplicate section", [](Image& i) { i.section(KITE_SEC_FDS)->type = KITE_SEC_REGIONS; }, "duplicate"},
      {"run outside its region",
       [](Image& i) { i.entries<kite_img_page_run>(KITE_SEC_PAGE_RUNS)[0].page = uint64_t{1} << 40; },
       "extends past its region"},
      {"run data outside page data",
       [](Image& i) { i.entries<kite_img_page_run>(KITE_SEC_PAGE_RUNS)[0].data_offset = 0; },
       "outside the page data"},
      {"run with absurd length",
       [](Image& i) { i.entries<kite_img_page_run>(KITE_SEC_PAGE_RUNS)[0].npages = 1u << 30; },
       "bad page count"},
      {"run for a bad region",
       [](Image& i) { i.entries<kite_img_page_run>(KITE_SEC_PAGE_RUNS)[0].region = 1u << 30; },
       "bad region index"},
      {"saved_pages lie",
       [](Image& i) { i.entries<kite_img_region>(KITE_SEC_REGIONS)[0].saved_pages += 1; },
       "saved"},
      {"unterminated strings",
       [](Image& i) {
         auto* s = i.section(KITE_SEC_STRINGS);
         i.data()[s->offset + s->size - 1] = 'x';
       },
       "strings"},
      {"string offset out of range",
       [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->cwd.offset = 0x7fffffff; },
       "bad cwd"},
      {"signal frame in no region",
       [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->sigframe = 0x10; },
       "signal frame"},
      {"fixup nowhere", [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->fixup_addr = 0; }, "fixup"},
      {"tail not executable",
       [](Image& i) {
         auto* p = i.entries<kite_img_process>(KITE_SEC_PROCESS);
         p->restore_tail = p->sigframe;
       },
       "restore tail"},
      {"mm out of order",
       [](Image& i) {
         auto* p = i.entries<kite_img_process>(KITE_SEC_PROCESS);
         p->mm.brk = p->mm.start_brk - 4096;
       },
       "mm fields"},
      {"handler for SIGKILL",
       [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->sigactions[8].handler = 0x1000; },
       "SIGKILL"},
      {"pending SIGKILL",
       [](Image& i) { i.entries<kite_img_siginfo>(KITE_SEC_PENDING)[0].bytes[0] = 9; },
       "bad signal number"},
      {"duplicate fd",
       [](Image& i) {
         auto* f = i.entries<kite_img_fd>(KITE_SEC_FDS);
         f[1].fd = f[0].fd;
       },
       "not sorted"},
      {"negative fd", [](Image& i) { i.entries<kite_img_fd>(KITE_SEC_FDS)[0].fd = -5; }, "descriptor number"},
      {"unknown fd kind", [](Image& i) { i.entries<kite_img_fd>(KITE_SEC_FDS)[0].kind = KITE_FD_KIND_LIMIT; }, "unknown kind"},
      {"standard stream 3",
       [](Image& i) {
         auto* f = i.entries<kite_img_fd>(KITE_SEC_FDS);
         f[0].kind = KITE_FD_STDIO;
         f[0].path = {0, 0};
         f[0].offset = 3;
       },
       "standard stream number"},
      {"standard stream with a path",
       [](Image& i) {
         auto* f = i.entries<kite_img_fd>(KITE_SEC_FDS);
         f[0].kind = KITE_FD_STDIO;
         f[0].offset = 1;
       },
       "with a path"},
      {"absurd groups", [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->ngroups = 100000; }, "groups"},
      {"bad auxv", [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->auxv_words = 1000; }, "auxv"},
      {"itimer usec", [](Image& i) { i.entries<kite_img_process>(KITE_SEC_PROCESS)->itimers[0].value_usec = 1000000; }, "timer"},
      {"shared writable file region",
       [](Image& i) {
         auto* r = i.entries<kite_img_region>(KITE_SEC_REGIONS);
         for (uint64_t k = 0; k < i.section(KITE_SEC_REGIONS)->count; ++k) {
           if (r[k].kind == KITE_REGION_FILE) {
             r[k].flags = KITE_REGION_SHARED;
             r[k].prot |= 2;
             break;
           }
         }
       },
       "shared writable"},
  };
  for (const Edit& e : edits) {
    Image img = pristine_;
    e.apply(img);
    img.Reseal();
    std::string msg;
    EXPECT_NE(Validate(img, &msg), 0) << e.name << " was accepted";
    EXPECT_NE(msg.find(e.expect), std::string::npos) << e.name << ": " << msg;
  }
}

TEST_F(ImageValidateTest, StandardStreamRecordsAreAccepted) {
  Image img = pristine_;
  auto* f = img.entries<kite_img_fd>(KITE_SEC_FDS);
  ASSERT_GT(img.section(KITE_SEC_FDS)->count, 0u);
  f[0].kind = KITE_FD_STDIO;
  f[0].path = {0, 0};
  f[0].offset = 2;
  img.Reseal();
  std::string msg;
  EXPECT_EQ(Validate(img, &msg), 0) << msg;
}

// Random edits of metadata with checksums recomputed: whatever the validator accepts must obey
// the rules the restorer relies on (checked here independently).
TEST_F(ImageValidateTest, AcceptedRandomEditsStillObeyTheRules) {
  std::mt19937_64 rng(3);
  Image base = pristine_;
  auto covered = Covered(base);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    Image img = pristine_;
    int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      auto [b, e] = covered[rng() % covered.size()];
      if (e <= b) continue;
      size_t at = b + rng() % (e - b);
      img.data()[at] = uint8_t(rng() % 3 == 0 ? 0 : rng());
    }
    img.Reseal();
    kite_img_view v;
    kite_img_error err;
    if (kite_img_validate_buffer(img.data(), img.size, &v, &err) != 0) continue;
    ++accepted;
    for (uint64_t r = 0; r < v.nregions; ++r) {
      const kite_img_region& reg = v.regions[r];
      ASSERT_LT(reg.start, reg.end);
      ASSERT_LE(reg.end, KITE_IMG_USER_LIMIT);
      ASSERT_EQ(reg.start % 4096, 0u);
      if (r > 0) {
        ASSERT_GE(reg.start, v.regions[r - 1].end);
      }
    }
    for (uint64_t r = 0; r < v.nruns; ++r) {
      const kite_img_page_run& run = v.runs[r];
      ASSERT_LT(run.region, v.nregions);
      const kite_img_region& reg = v.regions[run.region];
      ASSERT_LE((run.page + run.npages) * 4096, reg.end - reg.start);
      ASSERT_GE(run.data_offset, v.page_data_offset);
      ASSERT_LE(run.data_offset + run.npages * 4096ull, v.page_data_offset + v.page_data_size);
      ASSERT_LE(v.page_data_offset + v.page_data_size, img.size);
    }
  }
  // Some edits only touch informational fields: a few acceptances are expected and checked.
  EXPECT_LT(accepted, 20000);
}

// ---- kite-restore on hostile images -------------------------------------------------------

void WriteImage(const std::string& path, const uint8_t* data, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(n));
}

void ExpectRejected(const std::string& path, int code, const std::string& expect) {
  std::string out;
  int status = CkptHarness::RunRestoreTool({"--allow-root", path}, &out);
  ASSERT_TRUE(WIFEXITED(status)) << "kite-restore crashed: " << DescribeStatus(status) << " " << out;
  EXPECT_EQ(WEXITSTATUS(status), code) << out;
  EXPECT_NE(out.find(expect), std::string::npos) << out;
}

TEST_F(ImageValidateTest, RestorerRejectsHostileImagesWithAClearMessage) {
  std::string dir = harness_->dir();
  WriteImage(dir + "/trunc.img", pristine_.data(), pristine_.size / 2);
  ExpectRejected(dir + "/trunc.img", KITE_RESTORE_EXIT_INVALID, "invalid image");
  WriteImage(dir + "/empty.img", pristine_.data(), 0);
  ExpectRejected(dir + "/empty.img", KITE_RESTORE_EXIT_INVALID, "truncated");

  Image flip = pristine_;
  flip.data()[flip.section(KITE_SEC_REGIONS)->offset + 3] ^= 0x10;
  WriteImage(dir + "/flip.img", flip.data(), flip.size);
  ExpectRejected(dir + "/flip.img", KITE_RESTORE_EXIT_INVALID, "checksum mismatch");

  Image ver = pristine_;
  ver.header()->version = 99;
  ver.Reseal();
  WriteImage(dir + "/ver.img", ver.data(), ver.size);
  ExpectRejected(dir + "/ver.img", KITE_RESTORE_EXIT_INVALID, "unsupported version");

  Image overlap = pristine_;
  auto* r = overlap.entries<kite_img_region>(KITE_SEC_REGIONS);
  r[2].start = r[1].start;
  overlap.Reseal();
  WriteImage(dir + "/overlap.img", overlap.data(), overlap.size);
  ExpectRejected(dir + "/overlap.img", KITE_RESTORE_EXIT_INVALID, "overlaps");

  Image counts = pristine_;
  counts.section(KITE_SEC_PAGE_RUNS)->count = ~uint64_t{0};
  counts.Reseal();
  WriteImage(dir + "/counts.img", counts.data(), counts.size);
  ExpectRejected(dir + "/counts.img", KITE_RESTORE_EXIT_INVALID, "absurd count");

  // A region in the restorer's own window: refused before anything is touched.
  Image window = pristine_;
  auto* w = window.entries<kite_img_region>(KITE_SEC_REGIONS);
  w[0].start = KITE_RESTORER_BASE + (8ull << 30);
  w[0].end = w[0].start + 4096;
  w[0].saved_pages = 0;
  std::sort(w, w + window.section(KITE_SEC_REGIONS)->count,
            [](const kite_img_region& a, const kite_img_region& b) { return a.start < b.start; });
  // Runs name regions by index: rebuild the picture simply by dropping them.
  window.section(KITE_SEC_PAGE_RUNS)->count = 0;
  window.section(KITE_SEC_PAGE_RUNS)->size = 0;
  for (uint64_t k = 0; k < window.section(KITE_SEC_REGIONS)->count; ++k) w[k].saved_pages = 0;
  window.Reseal();
  WriteImage(dir + "/window.img", window.data(), window.size);
  std::string out;
  int status = CkptHarness::RunRestoreTool({"--verify-only", dir + "/window.img"}, &out);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_TRUE(WEXITSTATUS(status) == KITE_RESTORE_EXIT_HOST || WEXITSTATUS(status) == KITE_RESTORE_EXIT_INVALID) << out;

  // Corrupted page data passes the metadata checks, is caught while loading, and the process
  // never runs (exit code of a failed restore, not the subject's).
  Image pages = pristine_;
  auto* run = pages.entries<kite_img_page_run>(KITE_SEC_PAGE_RUNS);
  pages.data()[run[0].data_offset + 100] ^= 0xff;
  WriteImage(dir + "/pages.img", pages.data(), pages.size);
  EXPECT_EQ(Validate(pages), 0);
  ExpectRejected(dir + "/pages.img", KITE_RESTORE_EXIT_FAILED, "page data corrupted");

  // And the pristine image still verifies.
  status = CkptHarness::RunRestoreTool({"--verify-only", image_path_}, &out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
}

}  // namespace
}  // namespace kite::testing
