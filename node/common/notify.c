/* notify: sd_notify for a node run by systemd (Type=notify), done by hand so the node needs no
 * libsystemd. The socket address is taken from NOTIFY_SOCKET at notify_init; a leading '@'
 * means the abstract namespace (its first byte becomes NUL). Datagrams are sent with
 * MSG_DONTWAIT on a socket opened per message (rare: start, reloads, stop), so a manager that
 * does not read can never stall the loop. The first failure is logged; later ones are not,
 * so a vanished socket cannot flood the log. */
#include "node/common/notify.h"
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "node/common/log.h"

#define NOTIFY_TEXT_MAX 512

static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;            /* 0: no NOTIFY_SOCKET, calls do nothing */
static bool notify_failed_logged;

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    notify_addrlen = 0;
    if (!path || (path[0] != '/' && path[0] != '@'))
        return;                              /* unset, or a form we do not speak (vsock) */
    size_t len = strlen(path);
    if (len < 2 || len >= sizeof notify_addr.sun_path)
        return;
    memset(&notify_addr, 0, sizeof notify_addr);
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, len);
    if (path[0] == '@')
        notify_addr.sun_path[0] = '\0';
    notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                 (path[0] == '@' ? 0 : 1));
}

void notify_send(const char *text)
{
    if (notify_addrlen == 0 || !text)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int e = 0;
    if (fd < 0)
        e = errno;
    else if (sendto(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL,
                    (const struct sockaddr *)&notify_addr, notify_addrlen) < 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    if (e && !notify_failed_logged) {
        notify_failed_logged = true;
        log_fact("-", "notify", "send-failed", "error=%s further=not-logged", strerror(e));
    }
}

void notify_status(const char *fmt, ...)
{
    char buf[NOTIFY_TEXT_MAX];
    int n = snprintf(buf, sizeof buf, "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    buf[strcspn(buf, "\n")] = '\0';          /* one line: a newline would start a new field */
    notify_send(buf);
}
