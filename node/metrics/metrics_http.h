/* metrics_http: the Prometheus scrape endpoint (bootstrap metrics_listen). One GET /metrics
 * per connection, answered with the registry rendered (metrics.h) and closed; any other path
 * is 404, any other method 405, a request head over METRICS_HTTP_HEAD_MAX octets 431, a
 * malformed one 400. At most METRICS_HTTP_CONNS_MAX connections at once (more are closed at
 * accept) and each lives at most METRICS_HTTP_TIMEOUT_S seconds, so a slow or hostile client
 * holds nothing for long. Loop thread only. */
#ifndef RN_METRICS_HTTP_H
#define RN_METRICS_HTTP_H
#include <stddef.h>

#define METRICS_HTTP_HEAD_MAX   8192   /* request line and headers, octets */
#define METRICS_HTTP_CONNS_MAX  16
#define METRICS_HTTP_TIMEOUT_S  10

struct event_base;
struct metrics;
struct metrics_http;

/* What a request head asks (pure: buf holds what arrived so far, len octets). */
enum metrics_http_req {
    MHTTP_INCOMPLETE,    /* no blank line yet and still under METRICS_HTTP_HEAD_MAX */
    MHTTP_METRICS,       /* GET /metrics (a query string is ignored): 200 */
    MHTTP_NOT_FOUND,     /* GET of another path: 404 */
    MHTTP_BAD_METHOD,    /* another method: 405 */
    MHTTP_BAD,           /* not an HTTP/1.x request line: 400 */
    MHTTP_TOO_LARGE,     /* no end of head within METRICS_HTTP_HEAD_MAX octets: 431 */
};
enum metrics_http_req metrics_http_classify(const char *buf, size_t len);

/* Run before each rendering, on the loop: refresh the gauges read from the node's state. */
typedef void metrics_http_collect_fn(void *arg);

/* Listen on host (an IPv4 or IPv6 literal) and port. NULL with err when the socket cannot be
 * made or bound. m and collect's arg are borrowed and must outlive the server. */
struct metrics_http *metrics_http_new(struct event_base *base, const char *host, unsigned port,
                                      struct metrics *m, metrics_http_collect_fn *collect,
                                      void *arg, char *err, size_t errlen);
/* Close the listener and every open connection; *h = NULL. */
void metrics_http_free(struct metrics_http **h);
#endif
