/*
 * cache_entry.h - GET /cache/entry: what the cache holds for one URL, for
 * someone debugging a key (cache_entry.c).
 */
#ifndef LEVEE_ADMIN_CACHE_ENTRY_H
#define LEVEE_ADMIN_CACHE_ENTRY_H

#include <stdio.h>

struct server;

/* The request GET <url> with Host <host> (NULL: "localhost") and the
 * request header line <header> ("Name: value", NULL: none) would be
 * answered from: its route, its key, the Vary variant it selects, and the
 * L1 entry's metadata, as JSON into <f>. Returns the HTTP status to answer
 * with: 200 (found or not: "stored" says), 400 (a URL levee would refuse;
 * <f> then holds the reason as text). */
int cache_entry_render(FILE *f, struct server *s, const char *url, const char *host, const char *header);

#endif
