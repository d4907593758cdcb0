#include "CCurlShim.h"
/* The functions are called through pointers (below): no type-checking wrapper macros. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* libcurl is loaded when the first e-mail channel needs it, not linked: a tttd without e-mail
 * alerts does not carry it (7.7 MB of resident memory at idle, measured by bench/control). */
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    curl_version_info_data *(*version_info)(CURLversion);
} api;
static char load_error[256];
static int load_status = -1;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

#define LOAD(field, name) \
    if (!(api.field = (__typeof__(api.field))dlsym(handle, name))) { \
        snprintf(load_error, sizeof load_error, "libcurl has no %s", name); \
        return; \
    }

static void load(void) {
    void *handle = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(load_error, sizeof load_error, "cannot load libcurl (apt-get install libcurl4): %s", dlerror());
        return;
    }
    LOAD(global_init, "curl_global_init")
    LOAD(easy_init, "curl_easy_init")
    LOAD(easy_setopt, "curl_easy_setopt")
    LOAD(easy_perform, "curl_easy_perform")
    LOAD(easy_getinfo, "curl_easy_getinfo")
    LOAD(easy_cleanup, "curl_easy_cleanup")
    LOAD(easy_strerror, "curl_easy_strerror")
    LOAD(slist_append, "curl_slist_append")
    LOAD(slist_free_all, "curl_slist_free_all")
    LOAD(version_info, "curl_version_info")
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed");
        return;
    }
    load_status = 0;
}

#define curl_global_init api.global_init
#define curl_easy_init api.easy_init
#define curl_easy_setopt api.easy_setopt
#define curl_easy_perform api.easy_perform
#define curl_easy_getinfo api.easy_getinfo
#define curl_easy_cleanup api.easy_cleanup
#define curl_easy_strerror api.easy_strerror
#define curl_slist_append api.slist_append
#define curl_slist_free_all api.slist_free_all
#define curl_version_info api.version_info

int ttt_curl_global_init(void) {
    pthread_once(&load_once, load);
    return load_status;
}

const char *ttt_curl_load_error(void) { return load_error; }

const char *ttt_curl_strerror(int code) {
    return ttt_curl_global_init() == 0 ? curl_easy_strerror((CURLcode)code) : load_error;
}

int ttt_smtp_failure_kind(int code) {
    switch ((CURLcode)code) {
    case CURLE_UNSUPPORTED_PROTOCOL: case CURLE_URL_MALFORMAT: case CURLE_NOT_BUILT_IN:
    case CURLE_LOGIN_DENIED: case CURLE_BAD_FUNCTION_ARGUMENT: case CURLE_UNKNOWN_OPTION:
        return TTT_SMTP_FAILURE_CONFIGURATION;
    case CURLE_USE_SSL_FAILED:
        return TTT_SMTP_FAILURE_STARTTLS;
    default:
        return TTT_SMTP_FAILURE_OTHER;
    }
}

const char *ttt_curl_version(void) {
    if (ttt_curl_global_init() != 0) return "";
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    return info && info->version ? info->version : "";
}

/* CURLOPT_MAIL_RCPT_ALLOWFAILS (7.69; spelt ALLLOWFAILS before 8.2): by number, for both spellings. */
#define TTT_CURLOPT_MAIL_RCPT_ALLOWFAILS ((CURLoption)290)

typedef struct upload {
    const unsigned char *data;
    size_t length;
    size_t offset;
} upload;

static size_t read_message(char *buffer, size_t size, size_t count, void *userdata) {
    upload *u = userdata;
    size_t room = size * count;
    size_t left = u->length - u->offset;
    size_t n = left < room ? left : room;
    memcpy(buffer, u->data + u->offset, n);
    u->offset += n;
    return n;
}

/* What the debug callback watches: the server's replies, and which RCPT each answers. */
typedef struct transcript {
    ttt_smtp_result *result;
    int awaiting_rcpt_reply;
    char rcpt[160];
} transcript;

static void copy_line(char *dest, size_t capacity, const char *src, size_t length) {
    size_t n = 0;
    for (size_t i = 0; i < length && n + 1 < capacity; i++) {
        char c = src[i];
        if (c == '\r' || c == '\n') break;
        dest[n++] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    dest[n] = 0;
}

static void append(char *dest, size_t capacity, const char *text) {
    size_t used = strlen(dest);
    if (used + 1 >= capacity) return;
    snprintf(dest + used, capacity - used, "%s", text);
}

static int watch(CURL *handle, curl_infotype type, char *data, size_t size, void *userdata) {
    (void)handle;
    transcript *t = userdata;
    if (type == CURLINFO_HEADER_OUT) {
        /* Only RCPT commands are looked at: AUTH lines (credentials) are never copied. */
        t->awaiting_rcpt_reply = 0;
        if (size > 8 && strncasecmp(data, "RCPT TO:", 8) == 0) {
            copy_line(t->rcpt, sizeof t->rcpt, data + 8, size - 8);
            t->awaiting_rcpt_reply = 1;
        }
    } else if (type == CURLINFO_HEADER_IN) {
        char line[256];
        copy_line(line, sizeof line, data, size);
        if (line[0] == 0) return 0;
        snprintf(t->result->last_reply, sizeof t->result->last_reply, "%s", line);
        /* A multi-line reply ("250-…") is followed by more: wait for its last line ("250 …"). */
        if (t->awaiting_rcpt_reply && strlen(line) >= 4 && line[3] != '-') {
            t->awaiting_rcpt_reply = 0;
            if (line[0] != '2') {
                if (t->result->refused[0]) append(t->result->refused, sizeof t->result->refused, "; ");
                append(t->result->refused, sizeof t->result->refused, t->rcpt);
                append(t->result->refused, sizeof t->result->refused, ": ");
                append(t->result->refused, sizeof t->result->refused, line);
            }
        }
    }
    return 0;
}

int ttt_smtp_send(const char *url, const char *username, const char *password, int tls,
                  const char *ca_file, const char *from, const char *const *recipients,
                  size_t recipient_count, const unsigned char *message, size_t length,
                  long timeout_s, long connect_timeout_s, ttt_smtp_result *result) {
    memset(result, 0, sizeof *result);
    if (ttt_curl_global_init() != 0) {
        snprintf(result->error, sizeof result->error, "%s", load_error);
        return CURLE_FAILED_INIT;
    }
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(result->error, sizeof result->error, "curl_easy_init failed");
        return CURLE_FAILED_INIT;
    }
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = 0;
    struct curl_slist *rcpt = NULL;
    CURLcode code = CURLE_OK;
    for (size_t i = 0; i < recipient_count; i++) {
        struct curl_slist *next = curl_slist_append(rcpt, recipients[i]);
        if (!next) { code = CURLE_OUT_OF_MEMORY; goto done; }
        rcpt = next;
    }
    upload u = { message, length, 0 };
    transcript t = { result, 0, "" };

#define SET(option, value) do { code = curl_easy_setopt(curl, option, value); if (code != CURLE_OK) goto done; } while (0)
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    /* Hardening (libcurl ≥ 7.85): nothing but SMTP, whatever the URL says. */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (username && *username) SET(CURLOPT_USERNAME, username);
    if (password) SET(CURLOPT_PASSWORD, password);
    SET(CURLOPT_USE_SSL, (long)tls);
    if (ca_file && *ca_file) SET(CURLOPT_CAINFO, ca_file);
    SET(CURLOPT_MAIL_FROM, from);
    SET(CURLOPT_MAIL_RCPT, rcpt);
    /* One refused recipient (a typo, a full mailbox) does not keep the alert from the others;
       curl fails when every recipient is refused. The refused ones are reported in `refused`. */
    curl_easy_setopt(curl, TTT_CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
    SET(CURLOPT_READFUNCTION, read_message);
    SET(CURLOPT_READDATA, &u);
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)length);
    SET(CURLOPT_TIMEOUT, timeout_s);
    SET(CURLOPT_CONNECTTIMEOUT, connect_timeout_s);
    SET(CURLOPT_DEBUGFUNCTION, watch);
    SET(CURLOPT_DEBUGDATA, &t);
    SET(CURLOPT_VERBOSE, 1L);  /* feeds `watch` only: with a debug function nothing is printed */
#undef SET

    code = curl_easy_perform(curl);
    long smtp_code = 0;
    if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &smtp_code) == CURLE_OK) result->smtp_code = smtp_code;

done:
    snprintf(result->error, sizeof result->error, "%s", errbuf);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return (int)code;
}
