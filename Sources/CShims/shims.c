#define _GNU_SOURCE
#include "CShims.h"

#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(sizeof(struct ucred) == sizeof(ttt_ucred), "ttt_ucred must mirror struct ucred");

const int ttt_so_peercred = SO_PEERCRED;

static size_t passwd_buffer_size(void) {
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    return size > 0 ? (size_t)size : 16384;
}

int ttt_user_groups(uint32_t uid, uint32_t *groups, int capacity) {
    struct passwd pw, *found = NULL;
    size_t size = passwd_buffer_size();
    char *buffer = malloc(size);
    if (buffer == NULL) return -1;
    if (getpwuid_r((uid_t)uid, &pw, buffer, size, &found) != 0 || found == NULL) {
        free(buffer);
        return -1;
    }
    int count = capacity;
    int result = getgrouplist(pw.pw_name, pw.pw_gid, (gid_t *)groups, &count);
    free(buffer);
    return result < 0 ? -1 : count;
}

int64_t ttt_group_id(const char *name) {
    struct group gr, *found = NULL;
    long hint = sysconf(_SC_GETGR_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 16384;
    char *buffer = malloc(size);
    if (buffer == NULL) return -1;
    int64_t gid = -1;
    if (getgrnam_r(name, &gr, buffer, size, &found) == 0 && found != NULL) gid = (int64_t)gr.gr_gid;
    free(buffer);
    return gid;
}

int ttt_user_name(uint32_t uid, char *out, size_t capacity) {
    struct passwd pw, *found = NULL;
    size_t size = passwd_buffer_size();
    char *buffer = malloc(size);
    if (buffer == NULL) return -1;
    int rc = -1;
    if (getpwuid_r((uid_t)uid, &pw, buffer, size, &found) == 0 && found != NULL
        && strlen(pw.pw_name) < capacity) {
        strcpy(out, pw.pw_name);
        rc = 0;
    }
    free(buffer);
    return rc;
}

int ttt_malloc_trim(void) {
    return malloc_trim(0);
}
