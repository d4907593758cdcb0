#ifndef TTT_CSHIMS_H
#define TTT_CSHIMS_H

#include <stdint.h>
#include <sys/types.h>

/// Mirror of Linux's `struct ucred`, which Glibc only declares under _GNU_SOURCE.
typedef struct ttt_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
} ttt_ucred;

/// SO_PEERCRED's value on Linux (asm-generic).
extern const int ttt_so_peercred;

/// Fills `groups` with the user's primary and supplementary group ids, as /etc/group says now.
/// Returns the number of groups, or -1 when the uid has no passwd entry or the buffer is too small.
int ttt_user_groups(uint32_t uid, uint32_t *groups, int capacity);

/// The gid of a group name, or -1 when there is no such group.
int64_t ttt_group_id(const char *name);

/// The user name of a uid into `buffer`; 0 on success, -1 when unknown.
int ttt_user_name(uint32_t uid, char *buffer, size_t capacity);

/// sd_notify(3) without ever blocking: a datagram to $NOTIFY_SOCKET sent with MSG_DONTWAIT.
/// libsystemd's sd_notify blocks when the receiver's queue is full, which would stall the thread
/// that calls it. Returns 1 when sent, 0 when NOTIFY_SOCKET is unset, -errno on failure (EAGAIN:
/// the receiver is not reading; the state is dropped — the next one replaces it).
int ttt_notify(const char *state);

/// Starts `path` (an absolute path) with `argv` and `envp` (NULL-terminated): stdin from /dev/null,
/// stdout and stderr onto the given descriptors, every other descriptor closed, signal dispositions
/// and mask reset, in a process group of its own, and SIGKILLed when the calling thread ends
/// (PR_SET_PDEATHSIG: call it from a thread that lives as long as the process), so that no child
/// outlives tttd, even after a kill -9. Returns the child's pid, or -errno when it could not start
/// (the exec's own error included).
pid_t ttt_spawn(const char *path, char *const argv[], char *const envp[], int stdout_fd, int stderr_fd);

/// pipe2(fds, O_CLOEXEC), which Glibc only declares under _GNU_SOURCE.
int ttt_pipe_cloexec(int fds[2]);

/// waitpid(pid, WNOHANG): 0 while it runs; 1 when it ended, with `status` set to its exit code, or
/// 128 + the signal that ended it; -errno on failure.
int ttt_reap(pid_t pid, int *status);

/// malloc_trim(0): gives the pages malloc holds free back to the kernel (glibc keeps them after a
/// burst of work, so an idle daemon would otherwise stay at its peak). Returns 1 if memory was released.
int ttt_malloc_trim(void);

/// Where the Swift runtime's global executor sends the jobs it is given (a job is Swift's `UnownedJob`).
typedef void (*ttt_global_enqueue)(void *job);

/// Installs `enqueue` as the Swift concurrency runtime's global enqueue hook; call it once, before
/// any task runs. Returns 1 when installed, 0 when a hook was already set. Sleeping tasks are not
/// concerned: Swift 6.3 hands them to its default executor's own timers, not to this hook.
int ttt_install_global_executor(ttt_global_enqueue enqueue);

/// Runs a job handed to the hook as the global executor runs it: on the generic executor, not
/// isolated to any serial executor. Nonisolated code then goes on without a hop, and a switch to
/// an actor that is free happens on the same thread without a new job.
void ttt_run_job_on_generic_executor(void *job);

#endif
