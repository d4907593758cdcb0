#ifndef CZLIB_H
#define CZLIB_H
#include <zlib.h>

/* inflateInit2 is a macro: Swift calls this instead. 15 + 32: a zlib or gzip header, detected. */
static inline int czlib_inflate_init(z_streamp stream) {
    return inflateInit2(stream, 15 + 32);
}

#endif
