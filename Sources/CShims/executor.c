#include "CShims.h"
#include <stddef.h>
#include <stdint.h>

// The Swift runtime's hook for jobs sent to the global concurrent executor, as swift/Runtime/Concurrency.h
// declares it: a swiftcall function pointer whose last argument is the runtime's own implementation.
typedef void (*ttt_swift_enqueue_original)(void *job) __attribute__((swiftcall));
typedef void (*ttt_swift_enqueue_hook)(void *job, ttt_swift_enqueue_original original) __attribute__((swiftcall));
extern ttt_swift_enqueue_hook swift_task_enqueueGlobal_hook;

static ttt_global_enqueue enqueue_job;

// The runtime's `SerialExecutorRef` (an identity and an implementation word, both zero for the
// generic executor) and `swift_job_run`, which Dispatch's global executor calls the same way.
typedef struct {
    void *identity;
    uintptr_t implementation;
} ttt_serial_executor_ref;
extern void swift_job_run(void *job, ttt_serial_executor_ref executor) __attribute__((swiftcall));

__attribute__((swiftcall)) static void on_enqueue(void *job, ttt_swift_enqueue_original original) {
    (void)original;
    enqueue_job(job);
}

int ttt_install_global_executor(ttt_global_enqueue enqueue) {
    if (enqueue == NULL || swift_task_enqueueGlobal_hook != NULL) return 0;
    enqueue_job = enqueue;
    swift_task_enqueueGlobal_hook = on_enqueue;
    return 1;
}

void ttt_run_job_on_generic_executor(void *job) {
    swift_job_run(job, (ttt_serial_executor_ref){ NULL, 0 });
}
