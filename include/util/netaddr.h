/* netaddr: IP address literals, lists of CIDR ranges, and the client's
 * address behind trusted reverse proxies (X-Forwarded-For). */
#ifndef NETADDR_H
#define NETADDR_H
#include <stdbool.h>
#include <stddef.h>
#include "arena.h"
#include "buf.h"
#include "pg_err.h"

typedef struct netaddr_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;            /* 0..32 or 0..128 */
} netaddr_cidr_t;

typedef struct netaddr_list {
    netaddr_cidr_t *items;      /* malloc'd */
    size_t count;
} netaddr_list_t;

/* True when s is an IPv4 (dotted quad) or IPv6 literal, nothing else. */
bool netaddr_is_ip(const char *s);
/* "10.0.0.0/8, 192.168.1.7 ::1/128": ranges separated by commas or
 * blanks; a bare address is /32 or /128. PG_ERR_BAD_INPUT (err says which
 * item) on anything else. An empty text gives an empty list. */
pg_err netaddr_list_parse(const char *text, netaddr_list_t *out, buf_t *err);
void   netaddr_list_free(netaddr_list_t *l);
/* Whether the literal ip lies in one of the ranges (an IPv4-mapped IPv6
 * address counts as its IPv4 address). False for a non-literal. */
bool   netaddr_list_contains(const netaddr_list_t *l, const char *ip);
/* The client's address: remote_addr unless it is a trusted proxy; then the
 * X-Forwarded-For hops from the right, the first one not trusted (the
 * rightmost untrusted hop: what a trusted proxy saw). A hop that is not an
 * address ends the walk at the last trusted one; all hops trusted: the
 * leftmost. Never NULL when remote_addr is not. */
const char *netaddr_client(arena_t *a, const netaddr_list_t *trusted, const char *remote_addr,
                           const char *forwarded_for);

#endif
