// Element types of stored weights and their conversions to f32 (activations are f32).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace qwen3moe {

// F8E4M3: OCP e4m3fn (1 sign, 4 exponent bits biased by 7, 3 mantissa bits; no infinities,
// 0x7F/0xFF NaN), the element of block-scaled FP8 checkpoints.
enum class DType : uint8_t { F32, F16, BF16, I32, I64, F64, F8E4M3 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::F64:
      return 8;
    case DType::F8E4M3:
      return 1;
  }
  return 0;
}

// Safetensors spellings.
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::F64:
      return "F64";
    case DType::F8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

inline bool parse_dtype(std::string_view s, DType* out) {
  static constexpr DType all[] = {DType::F32, DType::I32,  DType::I64,   DType::F64,
                                  DType::F16, DType::BF16, DType::F8E4M3};
  for (DType t : all) {
    if (s == dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// e4m3 bits placed in an f32's sign, exponent and top mantissa bits read 2^-120 times the
// value (subnormals included, exactly); the multiply by 2^120 restores it. The kernels use the
// same two steps on 8 lanes.
inline float fp8_e4m3_to_f32(uint8_t b) {
  if ((b & 0x7Fu) == 0x7Fu) return std::numeric_limits<float>::quiet_NaN();
  const uint32_t bits = (uint32_t(b & 0x80u) << 24) | (uint32_t(b & 0x7Fu) << 20);
  float f;
  std::memcpy(&f, &bits, 4);
  return f * 0x1p120f;
}

// Round to nearest even, saturating at +-448 (the e4m3fn range, as torch's cast of a clamped
// value); NaN stays NaN.
inline uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7F;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7E;
  if (a < 0x1p-6f) {  // subnormal codes: multiples of 2^-9 (8 of them reach the first normal)
    return sign | uint8_t(std::nearbyint(a * 0x1p9f));  // nearest even (the default mode)
  }
  int e = 0;
  const float frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  int mant = int(std::nearbyint((frac * 2.0f - 1.0f) * 8.0f)), exp = e - 1;
  if (mant == 8) {
    mant = 0;
    ++exp;
  }
  const int code = ((exp + 7) << 3) | mant;
  return sign | uint8_t(code > 0x7E ? 0x7E : code);
}

}  // namespace qwen3moe
