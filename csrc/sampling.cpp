// The rollout sampler's uniforms (sampling.h). In PyTorch the hash takes ~20 passes over a [rows, vocab]
// int64 tensor (each op writes 8 bytes per token); here it is one pass that keeps each value in registers.
#include "sampling.h"

#include "batch.h"

namespace seedgrpo {

namespace {

constexpr size_t kTokensPerChunk = 4096;  // a unit of work for parallel_for (blocks of them per worker)

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void sampling_uniforms(const uint64_t* row_hashes, size_t rows, size_t vocab, int threads, double* out) {
  const size_t chunks_per_row = (vocab + kTokensPerChunk - 1) / kTokensPerChunk;
  parallel_for(rows * chunks_per_row, threads, [&](size_t chunk) {
    const size_t row = chunk / chunks_per_row;
    const size_t begin = (chunk % chunks_per_row) * kTokensPerChunk;
    const size_t end = begin + kTokensPerChunk < vocab ? begin + kTokensPerChunk : vocab;
    const uint64_t key = row_hashes[row];
    double* row_out = out + row * vocab;
    for (size_t token = begin; token < end; ++token) {
      const uint64_t bits = splitmix64(key ^ static_cast<uint64_t>(token)) >> 11;  // < 2^53: exact in double
      row_out[token] = (static_cast<double>(bits) + 0.5) * 0x1p-53;
    }
  });
}

}  // namespace seedgrpo
