// BigUInt arithmetic and the number grammar; mirrors _parse_real, _parse_exponent, _parse_signed_real,
// _parse_number and _format_rational in seedgrpo/grading/reference.py (which uses Python ints/Fraction).
#include "rational.h"

#include <algorithm>
#include <numeric>

#include "answers.h"
#include "latex_tokens.h"

namespace seedgrpo {

BigUInt::BigUInt(uint64_t value) {
  while (value) {
    limbs_.push_back(static_cast<uint32_t>(value));
    value >>= 32;
  }
}

BigUInt BigUInt::from_digits(std::string_view digits) {
  BigUInt out;
  for (char c : digits) out.mul_add_small(10, static_cast<uint32_t>(c - '0'));
  return out;
}

BigUInt BigUInt::pow10(int exponent) {
  BigUInt out(1);
  for (; exponent >= 9; exponent -= 9) out.mul_add_small(1000000000u, 0);
  for (; exponent > 0; --exponent) out.mul_add_small(10, 0);
  return out;
}

void BigUInt::trim() {
  while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
}

uint64_t BigUInt::to_u64() const {
  uint64_t v = 0;
  for (size_t i = limbs_.size(); i-- > 0;) v = (v << 32) | limbs_[i];
  return v;
}

int BigUInt::compare(const BigUInt& other) const {
  if (limbs_.size() != other.limbs_.size()) return limbs_.size() < other.limbs_.size() ? -1 : 1;
  for (size_t i = limbs_.size(); i-- > 0;) {
    if (limbs_[i] != other.limbs_[i]) return limbs_[i] < other.limbs_[i] ? -1 : 1;
  }
  return 0;
}

void BigUInt::mul_add_small(uint32_t factor, uint32_t addend) {
  uint64_t carry = addend;
  for (auto& limb : limbs_) {
    const uint64_t v = static_cast<uint64_t>(limb) * factor + carry;
    limb = static_cast<uint32_t>(v);
    carry = v >> 32;
  }
  if (carry) limbs_.push_back(static_cast<uint32_t>(carry));
  trim();
}

uint32_t BigUInt::divmod_small(uint32_t divisor) {
  uint64_t rem = 0;
  for (size_t i = limbs_.size(); i-- > 0;) {
    const uint64_t cur = (rem << 32) | limbs_[i];
    limbs_[i] = static_cast<uint32_t>(cur / divisor);
    rem = cur % divisor;
  }
  trim();
  return static_cast<uint32_t>(rem);
}

BigUInt BigUInt::operator*(const BigUInt& other) const {
  BigUInt out;
  if (is_zero() || other.is_zero()) return out;
  out.limbs_.assign(limbs_.size() + other.limbs_.size(), 0);
  for (size_t i = 0; i < limbs_.size(); ++i) {
    uint64_t carry = 0;
    for (size_t j = 0; j < other.limbs_.size(); ++j) {
      const uint64_t v = static_cast<uint64_t>(limbs_[i]) * other.limbs_[j] + out.limbs_[i + j] + carry;
      out.limbs_[i + j] = static_cast<uint32_t>(v);
      carry = v >> 32;
    }
    out.limbs_[i + other.limbs_.size()] = static_cast<uint32_t>(carry);
  }
  out.trim();
  return out;
}

BigUInt BigUInt::operator+(const BigUInt& other) const {
  BigUInt out;
  const size_t n = std::max(limbs_.size(), other.limbs_.size());
  out.limbs_.resize(n + 1, 0);
  uint64_t carry = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = i < limbs_.size() ? limbs_[i] : 0;
    const uint64_t b = i < other.limbs_.size() ? other.limbs_[i] : 0;
    const uint64_t v = a + b + carry;
    out.limbs_[i] = static_cast<uint32_t>(v);
    carry = v >> 32;
  }
  out.limbs_[n] = static_cast<uint32_t>(carry);
  out.trim();
  return out;
}

void BigUInt::subtract(const BigUInt& other) {
  int64_t borrow = 0;
  for (size_t i = 0; i < limbs_.size(); ++i) {
    int64_t v = static_cast<int64_t>(limbs_[i]) - borrow - (i < other.limbs_.size() ? other.limbs_[i] : 0);
    borrow = v < 0 ? 1 : 0;
    limbs_[i] = static_cast<uint32_t>(v + (borrow << 32));
  }
  trim();
}

size_t BigUInt::bit_length() const {
  if (limbs_.empty()) return 0;
  size_t bits = 32 * (limbs_.size() - 1);
  for (uint32_t top = limbs_.back(); top; top >>= 1) ++bits;
  return bits;
}

size_t BigUInt::trailing_zeros() const {
  size_t bits = 0, i = 0;
  while (i < limbs_.size() && limbs_[i] == 0) {
    bits += 32;
    ++i;
  }
  if (i < limbs_.size()) {
    for (uint32_t v = limbs_[i]; !(v & 1u); v >>= 1) ++bits;
  }
  return bits;
}

void BigUInt::shift_left_one(bool low_bit) {
  uint32_t carry = low_bit ? 1u : 0u;
  for (auto& limb : limbs_) {
    const uint32_t next = limb >> 31;
    limb = (limb << 1) | carry;
    carry = next;
  }
  if (carry) limbs_.push_back(carry);
}

void BigUInt::shift_right(size_t bits) {
  const size_t words = bits / 32, rest = bits % 32;
  if (words >= limbs_.size()) {
    limbs_.clear();
    return;
  }
  limbs_.erase(limbs_.begin(), limbs_.begin() + static_cast<std::ptrdiff_t>(words));
  if (rest) {
    for (size_t i = 0; i < limbs_.size(); ++i) {
      const uint32_t high = i + 1 < limbs_.size() ? limbs_[i + 1] << (32 - rest) : 0;
      limbs_[i] = (limbs_[i] >> rest) | high;
    }
  }
  trim();
}

BigUInt BigUInt::divide(const BigUInt& divisor) const {
  if (fits_u64() && divisor.fits_u64()) return BigUInt(to_u64() / divisor.to_u64());
  BigUInt quotient, rem;  // binary long division: values are bounded, so bit by bit is fast enough
  quotient.limbs_.assign(limbs_.size(), 0);
  for (size_t i = bit_length(); i-- > 0;) {
    rem.shift_left_one(bit(i));
    if (rem.compare(divisor) >= 0) {
      rem.subtract(divisor);
      quotient.limbs_[i / 32] |= 1u << (i % 32);
    }
  }
  quotient.trim();
  return quotient;
}

BigUInt BigUInt::gcd(BigUInt a, BigUInt b) {
  if (a.is_zero()) return b;
  if (b.is_zero()) return a;
  if (a.fits_u64() && b.fits_u64()) return BigUInt(std::gcd(a.to_u64(), b.to_u64()));
  const size_t shift = std::min(a.trailing_zeros(), b.trailing_zeros());  // binary GCD (Stein)
  a.shift_right(a.trailing_zeros());
  for (;;) {
    b.shift_right(b.trailing_zeros());
    if (a.compare(b) > 0) std::swap(a, b);
    b.subtract(a);
    if (b.is_zero()) break;
  }
  for (size_t i = 0; i < shift; ++i) a.shift_left_one(false);
  return a;
}

std::string BigUInt::to_string() const {
  if (is_zero()) return "0";
  BigUInt v = *this;
  std::vector<uint32_t> chunks;  // base 10^9, least significant first
  while (!v.is_zero()) chunks.push_back(v.divmod_small(1000000000u));
  std::string out = std::to_string(chunks.back());
  for (size_t i = chunks.size() - 1; i-- > 0;) {
    const std::string part = std::to_string(chunks[i]);
    out.append(9 - part.size(), '0');
    out += part;
  }
  return out;
}

namespace {

// A signed rational num/den, not necessarily reduced (den > 0 once parsing succeeded).
struct Value {
  bool negative = false;
  BigUInt num, den{1};
};

Value scaled(BigUInt mantissa, int exponent10) {
  Value v;
  if (exponent10 >= 0) {
    v.num = mantissa * BigUInt::pow10(exponent10);
  } else {
    v.num = std::move(mantissa);
    v.den = BigUInt::pow10(-exponent10);
  }
  return v;
}

Value quotient(const Value& a, const Value& b) {
  Value v;
  v.negative = a.negative != b.negative;
  v.num = a.num * b.den;
  v.den = a.den * b.num;
  return v;
}

size_t parse_digits(std::string_view s, size_t i) {
  while (i < s.size() && is_digit(s[i])) ++i;
  return i;
}

// Signed exponent digits at i: (value, end), or nullopt.
std::optional<std::pair<int, size_t>> parse_exponent(std::string_view s, size_t i) {
  const size_t j = (i < s.size() && (s[i] == '+' || s[i] == '-')) ? i + 1 : i;
  const size_t k = parse_digits(s, j);
  if (k == j || k - j > 4) return std::nullopt;
  const int magnitude = std::stoi(std::string(s.substr(j, k - j)));
  if (magnitude > kMaxExponent) return std::nullopt;
  return std::make_pair(s[i] == '-' ? -magnitude : magnitude, k);
}

// Unsigned real at i (12, 1.5, .5, 5., 1.5e3, 1.5\times10^{3}, 1.5\cdot10^{-3}, 10^{3}): (value, end).
std::optional<std::pair<Value, size_t>> parse_real(std::string_view s, size_t i, bool allow_leading_zero) {
  if (starts_at(s, i, "10^{")) {
    const auto exp = parse_exponent(s, i + 4);
    if (exp && starts_at(s, exp->second, "}")) {
      return std::make_pair(scaled(BigUInt(1), exp->first), exp->second + 1);
    }
  }
  size_t j = parse_digits(s, i);
  const std::string_view int_digits = s.substr(i, j - i);
  std::string_view frac_digits;
  if (j < s.size() && s[j] == '.') {
    const size_t k = parse_digits(s, j + 1);
    frac_digits = s.substr(j + 1, k - j - 1);
    j = k;
  }
  if (int_digits.empty() && frac_digits.empty()) return std::nullopt;
  if (int_digits.size() > kMaxDigits || frac_digits.size() > kMaxDigits) return std::nullopt;
  if (!allow_leading_zero && int_digits.size() > 1 && int_digits[0] == '0') return std::nullopt;
  BigUInt mantissa = BigUInt::from_digits(std::string(int_digits) + std::string(frac_digits));
  const int frac_len = static_cast<int>(frac_digits.size());
  std::optional<std::pair<int, size_t>> exp;
  if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    exp = parse_exponent(s, j + 1);
  } else if (starts_at(s, j, "\\times10^{") || starts_at(s, j, "\\cdot10^{")) {
    exp = parse_exponent(s, j + (s[j + 1] == 't' ? 10 : 9));
    if (exp && !starts_at(s, exp->second, "}")) exp.reset();
    if (exp) exp->second += 1;
  }
  if (!exp) return std::make_pair(scaled(std::move(mantissa), -frac_len), j);
  return std::make_pair(scaled(std::move(mantissa), exp->first - frac_len), exp->second);
}

std::optional<std::pair<Value, size_t>> parse_signed_real(std::string_view s, size_t i,
                                                          bool allow_leading_zero) {
  const bool negative = starts_at(s, i, "-");
  const size_t j = (i < s.size() && (s[i] == '+' || s[i] == '-')) ? i + 1 : i;
  auto real = parse_real(s, j, allow_leading_zero);
  if (real) real->first.negative = negative;
  return real;
}

std::optional<Value> parse_number(std::string_view e, bool allow_leading_zero) {
  const bool negative = starts_at(e, 0, "-");
  const size_t i = (!e.empty() && (e[0] == '-' || e[0] == '+')) ? 1 : 0;
  if (starts_at(e, i, "\\frac{")) {
    const auto num = parse_signed_real(e, i + 6, allow_leading_zero);
    if (!num || !starts_at(e, num->second, "}{")) return std::nullopt;
    const auto den = parse_signed_real(e, num->second + 2, allow_leading_zero);
    if (!den || den->first.num.is_zero() || den->second + 1 != e.size() || e[den->second] != '}') {
      return std::nullopt;
    }
    Value v = quotient(num->first, den->first);
    v.negative = v.negative != negative;
    return v;
  }
  auto real = parse_real(e, i, allow_leading_zero);
  if (!real) return std::nullopt;
  Value value = std::move(real->first);
  const size_t k = real->second;
  value.negative = negative;
  if (k == e.size()) return value;
  if (e[k] == '/') {
    const auto den = parse_real(e, k + 1, allow_leading_zero);
    if (!den || den->first.num.is_zero() || den->second != e.size()) return std::nullopt;
    return quotient(value, den->first);
  }
  if (starts_at(e, k, "\\frac{") && parse_digits(e, i) == k) {  // mixed number: integer part, then p/q
    const size_t p_end = parse_digits(e, k + 6);
    if (p_end == k + 6 || !starts_at(e, p_end, "}{")) return std::nullopt;
    const size_t q_end = parse_digits(e, p_end + 2);
    if (q_end == p_end + 2 || q_end + 1 != e.size() || e[q_end] != '}') return std::nullopt;
    const std::string_view p_digits = e.substr(k + 6, p_end - k - 6);
    const std::string_view q_digits = e.substr(p_end + 2, q_end - p_end - 2);
    if (p_digits.size() > kMaxDigits || q_digits.size() > kMaxDigits) return std::nullopt;
    const BigUInt p = BigUInt::from_digits(p_digits), q = BigUInt::from_digits(q_digits);
    if (q.is_zero() || p.compare(q) >= 0) return std::nullopt;
    value.num = value.num * q + p;  // the integer part has den == 1
    value.den = q;
    return value;
  }
  return std::nullopt;
}

// Fast path for the most common answer, a plain integer of up to 18 digits: same result as the general
// parse (leading zeros dropped, no sign on zero) without big-integer work.
std::optional<std::string> small_integer(std::string_view e, bool allow_leading_zero) {
  const size_t start = (!e.empty() && (e[0] == '-' || e[0] == '+')) ? 1 : 0;
  const std::string_view digits = e.substr(start);
  if (digits.empty() || digits.size() > 18 || parse_digits(digits, 0) != digits.size()) return std::nullopt;
  if (!allow_leading_zero && digits.size() > 1 && digits[0] == '0') return std::nullopt;  // general path too
  const size_t first = std::min(digits.find_first_not_of('0'), digits.size() - 1);
  const std::string_view value = digits.substr(first);
  return (e[0] == '-' && value != "0" ? "-" : "") + std::string(value);
}

}  // namespace

std::optional<std::string> canonical_number(std::string_view e, bool allow_leading_zero) {
  if (auto small = small_integer(e, allow_leading_zero)) return small;
  const auto value = parse_number(e, allow_leading_zero);
  if (!value) return std::nullopt;
  const BigUInt g = BigUInt::gcd(value->num, value->den);
  const BigUInt num = value->num.divide(g), den = value->den.divide(g);
  std::string out = (value->negative && !num.is_zero()) ? "-" : "";
  out += num.to_string();
  if (den.compare(BigUInt(1)) != 0) {
    out += '/';
    out += den.to_string();
  }
  return out;
}

}  // namespace seedgrpo
