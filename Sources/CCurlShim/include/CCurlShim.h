#ifndef TTT_CCURL_SHIM_H
#define TTT_CCURL_SHIM_H

#include <stddef.h>

/// Initialises libcurl once for the process (curl_global_init is not thread-safe: call it at start).
int ttt_curl_global_init(void);

#endif
