// The rollout sampler's counter-based noise (seedgrpo/rollout/sampling.py is the reference): each token's
// uniform is a hash of (row, step, token id) only, so a row's sample depends on nothing else in the batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace seedgrpo {

// out[r * vocab + t] = ((splitmix64(row_hashes[r] ^ t) >> 11) + 0.5) * 2^-53, a uniform in (0, 1) with 53
// random bits; row_hashes[r] already mixes the row's seed and the decode step. Bit for bit the reference's
// int64 arithmetic (which wraps like uint64) and its two exactly rounded float64 operations.
void sampling_uniforms(const uint64_t* row_hashes, size_t rows, size_t vocab, int threads, double* out);

}  // namespace seedgrpo
