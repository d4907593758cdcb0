#define _GNU_SOURCE
#include "CShims.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Only async-signal-safe calls between fork and exec: the parent is multithreaded.
static void child_fail(int report_fd) {
    int err = errno;
    (void)!write(report_fd, &err, sizeof err);
    _exit(127);
}

pid_t ttt_spawn(const char *path, char *const argv[], char *const envp[], int stdout_fd, int stderr_fd) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(report[0]);
        close(report[1]);
        return -err;
    }
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report[1]);
        // The parent may have died before prctl took effect.
        if (getppid() != parent) _exit(127);
        setpgid(0, 0);
        // libdispatch ignores the signals it watches (SIGTERM, SIGINT, SIGHUP); a child must not.
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd < 0) child_fail(report[1]);
        if (dup2(null_fd, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0) child_fail(report[1]);
        // Close everything else but the report pipe (close-on-exec): sockets, the database, the journal.
        int keep = report[1];
        if (keep > 3) syscall(SYS_close_range, 3, (unsigned)keep - 1, 0);
        syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0);
        execve(path, argv, envp);
        child_fail(keep);
    }
    close(report[1]);
    int err = 0;
    ssize_t got;
    do { got = read(report[0], &err, sizeof err); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof err) {
        int status;
        waitpid(pid, &status, 0);
        return -err;
    }
    return pid;
}

int ttt_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int ttt_reap(pid_t pid, int *status) {
    int raw = 0;
    pid_t done;
    do { done = waitpid(pid, &raw, WNOHANG); } while (done < 0 && errno == EINTR);
    if (done < 0) return -errno;
    if (done == 0) return 0;
    if (WIFEXITED(raw)) *status = WEXITSTATUS(raw);
    else if (WIFSIGNALED(raw)) *status = 128 + WTERMSIG(raw);
    else *status = -1;
    return 1;
}
