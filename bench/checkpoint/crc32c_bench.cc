// CRC-32C throughput (syscall-shim/image/crc32c.h), which the shim computes over every page run
// it dumps and kite-restore again over every run it loads: the three interleaved crc32q chains
// against one chain (the previous code, kept here as the baseline) and memcpy of the same bytes.
//   flock /tmp/kite-build.lock build/bin/kite_crc32c_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "syscall-shim/image/crc32c.h"

namespace {

uint32_t OneChain(uint32_t crc, const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) c = kite_crc32c_word(c, p);
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; n--, p++) __asm__("crc32b %1, %0" : "+r"(c32) : "rm"(*p));
  return ~c32;
}

std::vector<unsigned char> Buffer(size_t n) {
  std::vector<unsigned char> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(i * 131 + 7);
  return b;
}

void BM_Crc32cThreeChains(benchmark::State& state) {
  auto b = Buffer(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(kite_crc32c(0, b.data(), b.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_Crc32cOneChain(benchmark::State& state) {
  auto b = Buffer(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(OneChain(0, b.data(), b.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_Memcpy(benchmark::State& state) {
  auto b = Buffer(static_cast<size_t>(state.range(0)));
  std::vector<unsigned char> d(b.size());
  for (auto _ : state) {
    std::memcpy(d.data(), b.data(), b.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

// A page run (up to 256 pages, 1 MiB) and a 16 MiB buffer.
BENCHMARK(BM_Crc32cThreeChains)->Arg(1 << 20)->Arg(16 << 20);
BENCHMARK(BM_Crc32cOneChain)->Arg(1 << 20)->Arg(16 << 20);
BENCHMARK(BM_Memcpy)->Arg(1 << 20)->Arg(16 << 20);

}  // namespace

BENCHMARK_MAIN();
