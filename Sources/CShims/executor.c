#define _GNU_SOURCE
#include "CShims.h"
#include <stddef.h>
#include <time.h>

// The Swift runtime's hooks for jobs sent to the global concurrent executor, as swift/Runtime/Concurrency.h
// declares them: swiftcall function pointers, the last argument the runtime's own implementation.
typedef void (*ttt_swift_enqueue_original)(void *job) __attribute__((swiftcall));
typedef void (*ttt_swift_enqueue_hook)(void *job, ttt_swift_enqueue_original original) __attribute__((swiftcall));
typedef void (*ttt_swift_delay_original)(unsigned long long delay, void *job) __attribute__((swiftcall));
typedef void (*ttt_swift_delay_hook)(unsigned long long delay, void *job, ttt_swift_delay_original original)
    __attribute__((swiftcall));
typedef void (*ttt_swift_deadline_original)(long long sec, long long nsec, long long tsec, long long tnsec,
                                            int clock, void *job) __attribute__((swiftcall));
typedef void (*ttt_swift_deadline_hook)(long long sec, long long nsec, long long tsec, long long tnsec, int clock,
                                        void *job, ttt_swift_deadline_original original) __attribute__((swiftcall));
extern ttt_swift_enqueue_hook swift_task_enqueueGlobal_hook;
extern ttt_swift_delay_hook swift_task_enqueueGlobalWithDelay_hook;
extern ttt_swift_deadline_hook swift_task_enqueueGlobalWithDeadline_hook;

static ttt_global_enqueue enqueue_now;
static ttt_global_enqueue_after enqueue_after;

__attribute__((swiftcall)) static void on_enqueue(void *job, ttt_swift_enqueue_original original) {
    (void)original;
    enqueue_now(job);
}

__attribute__((swiftcall)) static void on_delay(unsigned long long delay, void *job, ttt_swift_delay_original original) {
    (void)original;
    enqueue_after(job, delay);
}

// The runtime's clock ids: 1 is ContinuousClock (CLOCK_BOOTTIME on Linux), 2 SuspendingClock (CLOCK_MONOTONIC).
__attribute__((swiftcall)) static void on_deadline(long long sec, long long nsec, long long tsec, long long tnsec,
                                                   int clock, void *job, ttt_swift_deadline_original original) {
    (void)tsec; (void)tnsec; (void)original;
    struct timespec now;
    clock_gettime(clock == 1 ? CLOCK_BOOTTIME : CLOCK_MONOTONIC, &now);
    long long delay = (sec - (long long)now.tv_sec) * 1000000000LL + (nsec - (long long)now.tv_nsec);
    enqueue_after(job, delay > 0 ? (unsigned long long)delay : 0);
}

int ttt_install_global_executor(ttt_global_enqueue now, ttt_global_enqueue_after after) {
    if (now == NULL || after == NULL || swift_task_enqueueGlobal_hook != NULL
        || swift_task_enqueueGlobalWithDelay_hook != NULL || swift_task_enqueueGlobalWithDeadline_hook != NULL) return 0;
    enqueue_now = now;
    enqueue_after = after;
    swift_task_enqueueGlobalWithDelay_hook = on_delay;
    swift_task_enqueueGlobalWithDeadline_hook = on_deadline;
    swift_task_enqueueGlobal_hook = on_enqueue;
    return 1;
}
