/*
 * cache_stats.c - the names of the refusals (cache_stats.h).
 */
#include "cache/cache_stats.h"

const char *const cache_refusal_names[RF_COUNT] = {
#define X(id, name) [RF_##id] = name,
    CACHE_REFUSALS(X)
#undef X
};
