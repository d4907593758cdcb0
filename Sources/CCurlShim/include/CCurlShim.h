#ifndef TTT_CCURL_SHIM_H
#define TTT_CCURL_SHIM_H

#include <stddef.h>

/// Initialises libcurl once for the process (curl_global_init is not thread-safe: call it at start).
int ttt_curl_global_init(void);

/// Why libcurl could not be loaded or initialised ("" when it was).
const char *ttt_curl_load_error(void);

/// How an SMTP session must protect itself (values of libcurl's CURLOPT_USE_SSL).
enum {
    TTT_SMTP_TLS_NONE = 0,      /* CURLUSESSL_NONE: plaintext, never STARTTLS */
    TTT_SMTP_TLS_TRY = 1,       /* CURLUSESSL_TRY: STARTTLS when offered, plaintext otherwise */
    TTT_SMTP_TLS_REQUIRED = 3,  /* CURLUSESSL_ALL: STARTTLS (or smtps://) or fail */
};

/// What one SMTP send learnt besides its CURLcode.
typedef struct ttt_smtp_result {
    /// The last SMTP reply code (CURLINFO_RESPONSE_CODE), 0 when the server never answered.
    long smtp_code;
    /// curl's error buffer (CURLOPT_ERRORBUFFER), "" when curl said nothing more.
    char error[256];
    /// The server's last reply line (e.g. "451 4.3.0 try later"), "" when none. Never a line
    /// tttd sent: the credentials are not in it.
    char last_reply[256];
    /// The recipients the server refused while others were accepted (CURLOPT_MAIL_RCPT_ALLOWFAILS):
    /// "<addr>: reply; <addr>: reply", truncated; "" when none.
    char refused[512];
} ttt_smtp_result;

/// Sends one message with libcurl's SMTP (blocking: call it off the async executors).
///
/// `url` is `smtp://host[:port][/ehlo-domain]` or `smtps://…`, without credentials or query.
/// `username`/`password` may be NULL (no AUTH). `tls` is one of TTT_SMTP_TLS_*; `ca_file` (may be
/// NULL) replaces the system CA bundle to verify the server. `from` and each recipient are bare
/// addresses (`a@b`). `message` is the complete RFC 5322 message with CRLF line ends; libcurl
/// dot-stuffs it. Timeouts: `timeout_s` in all, `connect_timeout_s` to connect.
/// Returns the CURLcode (0 on success) and fills `result`.
int ttt_smtp_send(const char *url, const char *username, const char *password, int tls,
                  const char *ca_file, const char *from, const char *const *recipients,
                  size_t recipient_count, const unsigned char *message, size_t length,
                  long timeout_s, long connect_timeout_s, ttt_smtp_result *result);

/// What kind of failure a CURLcode from ttt_smtp_send is (the SMTP reply code aside).
enum {
    TTT_SMTP_FAILURE_OTHER = 0,         /* connection, DNS, timeout, TLS, odd reply: may pass later */
    TTT_SMTP_FAILURE_CONFIGURATION = 1, /* bad URL, protocol not built in, login denied, bad option */
    TTT_SMTP_FAILURE_STARTTLS = 2,      /* STARTTLS required but not offered or refused (CURLE_USE_SSL_FAILED) */
};
int ttt_smtp_failure_kind(int code);

/// curl_easy_strerror(code).
const char *ttt_curl_strerror(int code);

/// libcurl's version string ("7.88.1").
const char *ttt_curl_version(void);

#endif
