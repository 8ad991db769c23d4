/* pg_err: stable names for error codes. These strings appear in logs and in
 * client-facing error replies, so they never change once published. */
#include "pg_err.h"

const char *pg_err_name(pg_err e)
{
    switch (e) {
    case PG_OK:                return "ok";
    case PG_ERR_NOMEM:         return "nomem";
    case PG_ERR_BAD_INPUT:     return "bad_input";
    case PG_ERR_BAD_SIGNATURE: return "bad_signature";
    case PG_ERR_MISMATCH:      return "mismatch";
    case PG_ERR_NOT_FOUND:     return "not_found";
    case PG_ERR_CONFLICT:      return "conflict";
    case PG_ERR_TOO_LARGE:     return "too_large";
    case PG_ERR_UNAUTHORIZED:  return "unauthorized";
    case PG_ERR_UNSUPPORTED:   return "unsupported";
    case PG_ERR_DB:            return "db";
    case PG_ERR_UPSTREAM:      return "upstream";
    case PG_ERR_TIMEOUT:       return "timeout";
    case PG_ERR_CONFIG:        return "config";
    case PG_ERR_INTERNAL:      return "internal";
    case PG_ERR_COMMIT_UNKNOWN: return "commit_unknown";
    }
    return "unknown";
}
