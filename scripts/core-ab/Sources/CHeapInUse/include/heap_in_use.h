// Bytes the C allocator has handed out and not taken back (glibc's mallinfo2: small
// blocks in use plus mmapped blocks). Unlike RSS, it does not count freed memory glibc
// keeps, nor pages the kernel has reclaimed and faults back in.
#ifndef HEAP_IN_USE_H
#define HEAP_IN_USE_H
#include <stddef.h>
size_t heap_in_use(void);
#endif
