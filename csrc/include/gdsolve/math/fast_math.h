// gdsolve/math/fast_math.h - exp and log1p on restricted ranges written as plain arithmetic, for one
// value or a whole 32-byte vector of them (a libm call keeps a loop scalar). Host only (memcpy
// bit casts, GCC vectors); used by the vector fast paths of the losses (cpu/fast_losses.h), tested
// against NumPy through gdsolve/_core.pyx.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "gdsolve/config.h"

namespace gds {

// 32-byte GCC vectors for the lane-wise overloads below (4 doubles / 8 floats).
typedef double F64x4 __attribute__((vector_size(32)));
typedef std::int64_t I64x4 __attribute__((vector_size(32)));
typedef float F32x8 __attribute__((vector_size(32)));
typedef std::int32_t I32x8 __attribute__((vector_size(32)));

namespace fast_math_detail {

// What the formulas need of their number type N, for a scalar or a vector of lanes: a constant,
// 1-or-0 from a comparison, and the bits as an integer (B: the same-size integer type).
template <class T, class B> struct ScalarNum {
    typedef B Bits;
    static T splat(T c) { return c; }
    static T one_if(bool c) { return static_cast<T>(c); }
    static Bits bits(T x) {
        Bits b;
        std::memcpy(&b, &x, sizeof b);
        return b;
    }
    static T from_bits(Bits b) {
        T x;
        std::memcpy(&x, &b, sizeof x);
        return x;
    }
};
template <class V, class B, class T> struct VectorNum {
    typedef B Bits;
    static V splat(T c) { return V{} + c; }
    static V one_if(B mask) { return __builtin_convertvector(-mask, V); }  // true lanes are -1
    static Bits bits(V x) { return reinterpret_cast<Bits>(x); }
    static V from_bits(Bits b) { return reinterpret_cast<V>(b); }
};
template <class N> struct Num;
template <> struct Num<double> : ScalarNum<double, std::int64_t> {};
template <> struct Num<float> : ScalarNum<float, std::int32_t> {};
template <> struct Num<F64x4> : VectorNum<F64x4, I64x4, double> {};
template <> struct Num<F32x8> : VectorNum<F32x8, I32x8, float> {};

// exp(x) for x <= 0 without a libm call: 2^k * P(r) with k = round(x / ln 2), r = x - k ln 2 in
// two parts (Cody and Waite), P the Taylor polynomial of exp on |r| <= ln(2)/2 to degree 13
// (double) / 7 (float), truncation error below half an ulp (measured: at most 1 ulp overall).
// Rounding and 2^k use the "shifter" 1.5 * 2^52 (2^23 in float): adding it rounds to an integer
// that lands in the low mantissa bits, from where it moves to the exponent field (floor() would
// not vectorize without -fno-trapping-math). Below the smallest normal number it returns 0. The
// clamp is arithmetic, not `?:`: gcc 12 does not if-convert a conditional inside an inlined
// function and then leaves the loop scalar.
template <class N> inline N exp_nonpositive_f64(N x) {
    typedef Num<N> U;
    const N underflow = U::one_if(x < -708.0);
    x += (-708.0 - x) * underflow;
    const double shifter = 6755399441055744.0;  // 2^52 + 2^51
    const N kd = x * 1.4426950408889634 + shifter;
    const N k = kd - shifter;
    const N r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    N p = U::splat(1.0 / 6227020800.0);  // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // k in [-1022, 0] -> 2^k
    const typename U::Bits ebits = (U::bits(kd) - Num<double>::bits(shifter) + 1023) << 52;
    return p * U::from_bits(ebits) * (1.0 - underflow);
}

template <class N> inline N exp_nonpositive_f32(N x) {
    typedef Num<N> U;
    const N underflow = U::one_if(x < -87.0f);
    x += (-87.0f - x) * underflow;
    const float shifter = 12582912.0f;  // 2^23 + 2^22
    const N kf = x * 1.44269504f + shifter;
    const N k = kf - shifter;
    const N r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
    N p = U::splat(1.0f / 5040.0f);  // 1/7!
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // k in [-126, 0] -> 2^k
    const typename U::Bits ebits = (U::bits(kf) - Num<float>::bits(shifter) + 127) << 23;
    return p * U::from_bits(ebits) * (1.0f - underflow);
}

// log(1 + x) for x in [0, 1] (the log loss's log(1 + exp(-|z|))). With u = 1 + x reduced to
// [sqrt(2)/2, sqrt(2)] (halved, plus ln 2, when above sqrt(2)), log(u) = 2 atanh(s) with
// s = (u - 1) / (u + 1), |s| <= 0.172, summed as 2 s (1 + s^2/3 + s^4/5 + ...): 11 terms leave a
// truncation error below 1e-17 relative (float: 5 terms, below 3e-9). u - 1 is formed from x
// without rounding 1 + x, so small x keep full relative accuracy. Selects are arithmetic (see
// exp_nonpositive).
template <class N> inline N log1p_unit_f64(N x) {
    const N big = Num<N>::one_if(x > 0.41421356237309503);  // 1 + x > sqrt(2)
    const N f = x + big * ((x - 1.0) * 0.5 - x);             // (1 + x) / 2^big - 1
    const N s = f / (2.0 + f);
    const N s2 = s * s;
    N p = Num<N>::splat(1.0 / 23.0);
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return big * 0.6931471805599453 + 2.0 * s * p;
}

template <class N> inline N log1p_unit_f32(N x) {
    const N big = Num<N>::one_if(x > 0.41421356f);
    const N f = x + big * ((x - 1.0f) * 0.5f - x);
    const N s = f / (2.0f + f);
    const N s2 = s * s;
    N p = Num<N>::splat(1.0f / 9.0f);
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return big * 0.69314718f + 2.0f * s * p;
}

}  // namespace fast_math_detail

// One value, or the lanes of a vector: inside a target_clones entry (GDS_SIMD_CLONES) gcc 12
// turns the scalar versions' arithmetic selects back into branches and leaves a loop over them
// scalar, so hot loops there call the vector overloads on whole vectors (same results per lane).
inline double exp_nonpositive(double x) { return fast_math_detail::exp_nonpositive_f64(x); }
inline float exp_nonpositive(float x) { return fast_math_detail::exp_nonpositive_f32(x); }
inline F64x4 exp_nonpositive(F64x4 x) { return fast_math_detail::exp_nonpositive_f64(x); }
inline F32x8 exp_nonpositive(F32x8 x) { return fast_math_detail::exp_nonpositive_f32(x); }
inline double log1p_unit(double x) { return fast_math_detail::log1p_unit_f64(x); }
inline float log1p_unit(float x) { return fast_math_detail::log1p_unit_f32(x); }
inline F64x4 log1p_unit(F64x4 x) { return fast_math_detail::log1p_unit_f64(x); }
inline F32x8 log1p_unit(F32x8 x) { return fast_math_detail::log1p_unit_f32(x); }

// The 32-byte vector of T's: F64x4 or F32x8.
template <class T>
using LanesOf = typename std::conditional<sizeof(T) == 8, F64x4, F32x8>::type;

// z[i] = f(z[i]) over an array: whole vectors, then the tail one at a time (f: a generic callable
// taking a T or a LanesOf<T>, such as one of the functions above).
template <class T, class F> inline void map_lanes_in_place(T* z, gds_int64 n, F f) {
    typedef LanesOf<T> V;
    constexpr gds_int64 L = static_cast<gds_int64>(sizeof(V) / sizeof(T));
    gds_int64 i = 0;
    for (; i + L <= n; i += L) {
        V v;
        std::memcpy(&v, z + i, sizeof v);
        v = f(v);
        std::memcpy(z + i, &v, sizeof v);
    }
    for (; i < n; ++i) z[i] = f(z[i]);
}

template <class T> inline void exp_nonpositive_inplace(T* z, gds_int64 n) {
    map_lanes_in_place(z, n, [](auto v) { return exp_nonpositive(v); });
}
template <class T> inline void log1p_unit_inplace(T* z, gds_int64 n) {
    map_lanes_in_place(z, n, [](auto v) { return log1p_unit(v); });
}

}  // namespace gds
