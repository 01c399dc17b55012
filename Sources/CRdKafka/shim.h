#ifndef BECKON_CRDKAFKA_SHIM_H
#define BECKON_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
