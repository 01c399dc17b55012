#ifndef BECKON_CLIBPQ_SHIM_H
#define BECKON_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
