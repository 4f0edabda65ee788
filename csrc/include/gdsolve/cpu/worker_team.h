// gdsolve/cpu/worker_team.h - a fixed team of helper threads that the CPU executors hand one job
// at a time, e.g. half of each mini-batch, and the one way a job gets its per-type entry point
// compiled for the vector ISA (GDS_CLONED_TEAM_JOB). Host only, not for NVRTC.
// A mini-batch step lasts tens of microseconds, far less than waking a sleeping thread costs, so
// idle workers spin briefly on an atomic generation counter before they start yielding the core.
#pragma once
#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "gdsolve/config.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GDS_SPIN_PAUSE() _mm_pause()
#else
#define GDS_SPIN_PAUSE() std::this_thread::yield()
#endif

namespace gds {

constexpr int kMaxTeamSize = 8;  // the estimators pass at most 8 threads

// Job run by every member: job(context, member), member 0 being the calling thread. The
// function must be a plain function compiled for the vector ISA it needs (a thread body does
// not inherit the caller's target_clones choice): see GDS_CLONED_TEAM_JOB.
typedef void (*TeamJob)(void* context, int member);

// target_clones must sit on non-template functions: GDS_CLONED_TEAM_JOB(NAME, FN, JOB) declares
// NAME(JOB*, int member), calling FN(*job, member), compiled for AVX2+FMA and baseline; declare
// it once per JOB type (NAME then has one overload each; JOB last, as it may hold commas).
// team_job<JOB, NAME> is the TeamJob a WorkerTeam runs; a caller without a team calls
// NAME(&job, member) directly.
#define GDS_CLONED_TEAM_JOB(NAME, FN, ...) \
    GDS_SIMD_CLONES static void NAME(__VA_ARGS__* job, int member) { FN(*job, member); }

template <class Job, void (*Fn)(Job*, int)> inline void team_job(void* job, int member) {
    Fn(static_cast<Job*>(job), member);
}

// Work the caller may do while it waits for the others, a small slice per call; returns false
// once there is nothing left to do.
typedef bool (*IdleSlice)(void* context);

class WorkerTeam {
  public:
    // `size` members in all: the caller plus size - 1 helper threads.
    // A thread the system refuses to start leaves a smaller team (size() tells how many).
    explicit WorkerTeam(int size) : size_(size < 1 ? 1 : size) {
        threads_.reserve(size_ - 1);
        for (int m = 1; m < size_; ++m) {
            try {
                threads_.emplace_back(&WorkerTeam::serve, this, m);
            } catch (const std::system_error&) {
                break;
            }
        }
        size_ = static_cast<int>(threads_.size()) + 1;
    }
    WorkerTeam(const WorkerTeam&) = delete;
    WorkerTeam& operator=(const WorkerTeam&) = delete;
    ~WorkerTeam() {
        quit_.store(true, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_acq_rel);
        for (auto& t : threads_) t.join();
    }

    int size() const { return size_; }

    // Runs job on every member and returns when all have finished (a full barrier: the caller
    // then sees everything the workers wrote).
    // If the caller finishes its part first, it runs `idle` slices (if given) until the others
    // are done or the idle work is.
    void run(TeamJob job, void* context, IdleSlice idle = nullptr, void* idle_context = nullptr) {
        if (size_ == 1) {
            job(context, 0);
            return;
        }
        job_ = job;
        context_ = context;
        finished_.store(0, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_acq_rel);
        job(context, 0);
        const auto done = [&] { return finished_.load(std::memory_order_acquire) == size_ - 1; };
        if (idle)
            while (!done() && idle(idle_context)) {
            }
        wait_until(done);
    }

  private:
    template <class Ready> static void wait_until(Ready ready) {
        for (std::uint32_t spins = 0; !ready(); ++spins) {
            if (spins < (1u << 16)) {
                GDS_SPIN_PAUSE();
            } else {
                std::this_thread::yield();  // long idle (epoch bookkeeping) or a busy machine
            }
        }
    }

    void serve(int member) {
        std::uint64_t seen = 0;
        for (;;) {
            wait_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
            seen = generation_.load(std::memory_order_acquire);
            if (quit_.load(std::memory_order_acquire)) return;
            job_(context_, member);
            finished_.fetch_add(1, std::memory_order_acq_rel);
        }
    }

    int size_;
    std::vector<std::thread> threads_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> finished_{0};
    std::atomic<bool> quit_{false};
    TeamJob job_ = nullptr;
    void* context_ = nullptr;
};

}  // namespace gds
