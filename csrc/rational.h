// Exact numbers for canonicalization: a small unsigned big integer and the number grammar of
// docs/answers.md ("Numbers"). Inputs are bounded (digit runs <= kMaxDigits, |exponent| <= kMaxExponent),
// so values stay below ~10^1000 and every operation is a few thousand limb operations at worst; no
// floating point anywhere, so 0.1 + 0.2 style rounding can never merge or split answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrpo {

class BigUInt {
 public:
  BigUInt() = default;
  explicit BigUInt(uint64_t value);
  static BigUInt from_digits(std::string_view digits);  // ASCII digits; empty means 0
  static BigUInt pow10(int exponent);

  bool is_zero() const { return limbs_.empty(); }
  int compare(const BigUInt& other) const;  // -1, 0, 1
  BigUInt operator*(const BigUInt& other) const;
  BigUInt operator+(const BigUInt& other) const;
  BigUInt divide(const BigUInt& divisor) const;  // floor division; divisor != 0
  static BigUInt gcd(BigUInt a, BigUInt b);
  std::string to_string() const;

 private:
  bool fits_u64() const { return limbs_.size() <= 2; }
  uint64_t to_u64() const;
  size_t bit_length() const;
  bool bit(size_t i) const { return (limbs_[i / 32] >> (i % 32)) & 1u; }
  size_t trailing_zeros() const;
  void mul_add_small(uint32_t factor, uint32_t addend);
  uint32_t divmod_small(uint32_t divisor);  // in place; returns the remainder
  void shift_left_one(bool low_bit);
  void shift_right(size_t bits);
  void subtract(const BigUInt& other);  // requires *this >= other
  void trim();

  std::vector<uint32_t> limbs_;  // little-endian base 2^32, no high zero limbs; empty = 0
};

// The canonical text of e if all of e is a number (integer, decimal, scientific, p/q, \frac{p}{q},
// mixed number): "p" or "p/q" reduced, with a leading '-' for negatives. nullopt otherwise.
std::optional<std::string> canonical_number(std::string_view e, bool allow_leading_zero);

}  // namespace seedgrpo
