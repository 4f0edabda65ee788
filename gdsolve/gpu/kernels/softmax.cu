// gdsolve/gpu/kernels/softmax.cu - math/losses.h's softmax cross-entropy, one row per thread.
#include "prelude.cuh"
#include "gdsolve/math/losses.h"

// One row of logits (n x k, row-major) per thread: loss[i] = -log softmax(z_i)[label_i] and the
// row is overwritten with its gradient softmax(z_i) - onehot(label_i).
template <class T>
__global__ void softmax_xent_kernel(T* logits, const long long* labels, T* loss, long long n,
                                    long long k) {
    GDS_GRID_STRIDE_LOOP(i, n) {
        loss[i] = gds::softmax_cross_entropy<T>(logits + i * k, (int)k, (int)labels[i]);
    }
}
