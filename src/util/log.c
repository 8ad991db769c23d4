/* log: timestamped lines, one write(2) each so that several processes can
 * share one file without interleaving. See include/log.h. */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;

int log_open(const char *path)
{
    int fd;
    if (!path || !*path || !strcmp(path, "-")) {
        log_fd = 2;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    log_close();
    log_fd = fd;
    return 0;
}

void log_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    static const char *const names[] = { "info", "warn", "error" };
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;
    va_list ap;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(line + n, sizeof line - n, ".%03ldZ paygate[%d] %s: ", ts.tv_nsec / 1000000L,
                 (int)getpid(), names[level]);
    if (m > 0)
        n += (size_t)m;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    for (size_t i = 0; i < n; i++) {   /* one event, one line: no injected newlines */
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[n++] = '\n';
    if (write(log_fd, line, n) < 0) {
        /* nowhere left to report it */
    }
}
