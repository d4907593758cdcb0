#include "CCurlShim.h"
#include <curl/curl.h>

int ttt_curl_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}
