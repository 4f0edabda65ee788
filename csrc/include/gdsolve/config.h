// gdsolve/config.h - the one header that makes the core compile for host (g++) and device (NVRTC).
// Every other gdsolve header includes this first and uses GDS_HD and the gds:: math wrappers,
// never <cmath> directly: NVRTC has no host standard library.
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define GDS_HD __host__ __device__
#define GDS_DEVICE_COMPILE 1
#else
#define GDS_HD
#include <cmath>
#include <cstdint>
#endif

#if defined(__CUDACC_RTC__)
typedef long long gds_int64;
#else
typedef std::int64_t gds_int64;
#endif

namespace gds {

// Math wrappers: overloads for float and double resolve to the CUDA built-ins under NVRTC and to
// <cmath> on the host, so a template over T calls the single-precision function for float.
#if defined(__CUDACC_RTC__)
GDS_HD inline double sqrt(double x) { return ::sqrt(x); }
GDS_HD inline float sqrt(float x) { return ::sqrtf(x); }
GDS_HD inline double exp(double x) { return ::exp(x); }
GDS_HD inline float exp(float x) { return ::expf(x); }
GDS_HD inline double log(double x) { return ::log(x); }
GDS_HD inline float log(float x) { return ::logf(x); }
GDS_HD inline double log1p(double x) { return ::log1p(x); }
GDS_HD inline float log1p(float x) { return ::log1pf(x); }
GDS_HD inline double tanh(double x) { return ::tanh(x); }
GDS_HD inline float tanh(float x) { return ::tanhf(x); }
GDS_HD inline double cos(double x) { return ::cos(x); }
GDS_HD inline double pow(double x, double y) { return ::pow(x, y); }
GDS_HD inline double floor(double x) { return ::floor(x); }
GDS_HD inline bool isfinite(double x) { return ::isfinite(x); }
GDS_HD inline bool isfinite(float x) { return ::isfinite(x); }
#else
using std::sqrt;
using std::exp;
using std::log;
using std::log1p;
using std::tanh;
using std::cos;
using std::pow;
using std::floor;
using std::isfinite;
#endif

template <class T> GDS_HD inline T abs(T x) { return x < T(0) ? -x : x; }
template <class T> GDS_HD inline T max(T a, T b) { return a < b ? b : a; }
template <class T> GDS_HD inline T min(T a, T b) { return b < a ? b : a; }
template <class T> GDS_HD inline T sign(T x) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); }

constexpr double pi = 3.14159265358979323846;

// GDS_ROUNDED(x): x stays the rounded result of the operation that produced it. GCC contracts a
// multiply and a following add into one FMA (inside the AVX2+FMA clones) even across statements;
// where a definition is written as two roundings this keeps them two, on every path that runs
// it (host x86-64 GCC; elsewhere a no-op).
#if !defined(GDS_DEVICE_COMPILE) && defined(__GNUC__) && defined(__x86_64__)
#define GDS_ROUNDED(x) __asm__("" : "+x"(x))
#else
#define GDS_ROUNDED(x) ((void)0)
#endif

}  // namespace gds

// Host-only: runtime CPU dispatch for the hot loops without -march=native. A non-template entry
// point marked GDS_SIMD_CLONES is compiled twice (x86-64-v3: AVX2+FMA, and baseline x86-64) with
// everything it calls inlined into each copy; the loader picks the copy the CPU supports. Define
// GDS_NO_CLONES to turn it off (e.g. with GDSOLVE_NATIVE=1, which builds everything for the local
// CPU instead).
// "arch=x86-64-v3" (AVX2+FMA+BMI2) dispatches on CPU features; "arch=haswell" would dispatch on
// the CPU model being exactly Haswell, so AMD and newer Intel CPUs would always get the baseline.
// gcc 12 is the first to accept x86-64-v3 in target_clones.
#if !defined(GDS_DEVICE_COMPILE) && defined(__x86_64__) && defined(__GNUC__) && \
    !defined(__clang__) && !defined(GDS_NO_CLONES) && __GNUC__ >= 12
#define GDS_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), flatten))
#else
#define GDS_SIMD_CLONES
#endif
