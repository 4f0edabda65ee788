// gdsolve/fast_math.h - exp and log1p on restricted ranges written as plain arithmetic, so that
// loops over them vectorize (a libm call keeps a loop scalar). Host only (memcpy bit casts); used
// by the batch losses of mlp_loop.h and linear_loop.h, and tested against NumPy through
// gdsolve/_core.pyx.
#pragma once
#include <cstdint>
#include <cstring>

#include "config.h"

namespace gds {

// exp(x) for x <= 0 without a libm call: 2^k * P(r) with k = round(x / ln 2), r = x - k ln 2 in two parts (Cody and Waite), P the Taylor
// polynomial of exp on |r| <= ln(2)/2 to degree 13 (double) / 7 (float), truncation error below
// half an ulp (measured: at most 1 ulp overall). Rounding and 2^k use the "shifter" 1.5 * 2^52
// (2^23 in float): adding it rounds to an integer that lands in the low mantissa bits, from where
// it moves to the exponent field (floor() would not vectorize without -fno-trapping-math).
// Below the smallest normal number it returns 0. The clamp is arithmetic, not `?:`: gcc 12 does not
// if-convert a conditional inside an inlined function and then leaves the loop scalar.
inline double exp_nonpositive(double x) {
    const double underflow = static_cast<double>(x < -708.0);
    x += (-708.0 - x) * underflow;
    const double shifter = 6755399441055744.0;  // 2^52 + 2^51
    const double kd = x * 1.4426950408889634 + shifter;
    const double k = kd - shifter;
    const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;  // 1/13!
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
    std::int64_t kbits, sbits;
    std::memcpy(&kbits, &kd, sizeof kbits);
    std::memcpy(&sbits, &shifter, sizeof sbits);
    const std::int64_t ebits = (kbits - sbits + 1023) << 52;  // k in [-1022, 0] -> 2^k
    double scale;
    std::memcpy(&scale, &ebits, sizeof scale);
    return p * scale * (1.0 - underflow);
}

inline float exp_nonpositive(float x) {
    const float underflow = static_cast<float>(x < -87.0f);
    x += (-87.0f - x) * underflow;
    const float shifter = 12582912.0f;  // 2^23 + 2^22
    const float kf = x * 1.44269504f + shifter;
    const float k = kf - shifter;
    const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;  // 1/7!
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    std::int32_t kbits, sbits;
    std::memcpy(&kbits, &kf, sizeof kbits);
    std::memcpy(&sbits, &shifter, sizeof sbits);
    const std::int32_t ebits = (kbits - sbits + 127) << 23;  // k in [-126, 0] -> 2^k
    float scale;
    std::memcpy(&scale, &ebits, sizeof scale);
    return p * scale * (1.0f - underflow);
}

// log(1 + x) for x in [0, 1] (the log loss's log(1 + exp(-|z|))). With u = 1 + x reduced to
// [sqrt(2)/2, sqrt(2)] (halved, plus ln 2, when above sqrt(2)), log(u) = 2 atanh(s) with
// s = (u - 1) / (u + 1), |s| <= 0.172, summed as 2 s (1 + s^2/3 + s^4/5 + ...): 11 terms leave a
// truncation error below 1e-17 relative (float: 5 terms, below 3e-9). u - 1 is formed from x
// without rounding 1 + x, so small x keep full relative accuracy. Selects are arithmetic (see
// exp_nonpositive).
inline double log1p_unit(double x) {
    const double big = static_cast<double>(x > 0.41421356237309503);  // 1 + x > sqrt(2)
    const double f = x + big * ((x - 1.0) * 0.5 - x);  // (1 + x) / 2^big - 1
    const double s = f / (2.0 + f);
    const double s2 = s * s;
    double p = 1.0 / 23.0;
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

inline float log1p_unit(float x) {
    const float big = static_cast<float>(x > 0.41421356f);
    const float f = x + big * ((x - 1.0f) * 0.5f - x);
    const float s = f / (2.0f + f);
    const float s2 = s * s;
    float p = 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return big * 0.69314718f + 2.0f * s * p;
}

}  // namespace gds
