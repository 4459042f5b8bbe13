/* Unit tests for tlsctx (the STARTTLS server side): tlsctx_new with a good certificate and
 * key, a key of another pair, missing files; and a real handshake over a socketpair on one
 * event loop: plaintext buffered before the upgrade is discarded (CVE-2011-0411), the result
 * is TLS 1.2 or later and tlsctx_describe names it, and a client that offers at most
 * TLS 1.1 is refused. Certificates are made at test time by deploy/pki/mkcerts.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/common/tlsctx.h"

static char dir_a[64], dir_b[64];

static const char *root(void)
{
    const char *r = getenv("RELAYNODE_ROOT");
    return r && *r ? r : ".";
}

static int mkcerts(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/test_tlsctx.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash '%s/deploy/pki/mkcerts.sh' '%s' >/dev/null", root(), dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    return mkcerts(dir_a, sizeof dir_a) == 0 && mkcerts(dir_b, sizeof dir_b) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir_a, dir_b);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

static void good_pair_loads(void **state)
{
    char cert[128], key[128], err[512] = "";
    path(cert, sizeof cert, dir_a, "node.pem");
    path(key, sizeof key, dir_a, "node.key");
    struct tlsctx *t = tlsctx_new(cert, key, err, sizeof err);
    assert_non_null(t);
    tlsctx_free(&t);
    assert_null(t);
    tlsctx_free(&t);                  /* freeing NULL is a no-op */
}

static void key_of_another_pair_is_refused(void **state)
{
    char cert[128], key[128], err[512] = "";
    path(cert, sizeof cert, dir_a, "node.pem");
    path(key, sizeof key, dir_b, "node.key");
    assert_null(tlsctx_new(cert, key, err, sizeof err));
    print_message("err: %s\n", err);
    /* OpenSSL 3 refuses the key already when loading it ("key values mismatch"); older
     * releases only in SSL_CTX_check_private_key. Either way the key is what is named. */
    assert_true(strstr(err, "tls_key") != NULL);
    assert_true(strstr(err, "mismatch") != NULL || strstr(err, "does not match") != NULL);
}

static void missing_files_are_named(void **state)
{
    char cert[128], key[128], missing[128], err[512] = "";
    path(cert, sizeof cert, dir_a, "node.pem");
    path(key, sizeof key, dir_a, "node.key");
    path(missing, sizeof missing, dir_a, "absent.pem");
    assert_null(tlsctx_new(missing, key, err, sizeof err));
    assert_non_null(strstr(err, "tls_cert"));
    assert_non_null(strstr(err, missing));
    err[0] = '\0';
    assert_null(tlsctx_new(cert, missing, err, sizeof err));
    assert_non_null(strstr(err, "tls_key"));
    assert_non_null(strstr(err, missing));
}

/* ---- a handshake on one loop ---- */

struct hs {
    struct event_base *base;
    bool srv_ok, cli_ok, failed;
    char srv_got[64];
};

static void maybe_done(struct hs *h)
{
    if ((h->srv_ok && h->cli_ok) || h->failed)
        event_base_loopbreak(h->base);
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    struct hs *h = arg;
    if (what & BEV_EVENT_CONNECTED)
        h->srv_ok = true;
    else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        h->failed = true;
    maybe_done(h);
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
    struct hs *h = arg;
    if (what & BEV_EVENT_CONNECTED)
        h->cli_ok = true;
    else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        h->failed = true;
    maybe_done(h);
}

static void srv_read(struct bufferevent *bev, void *arg)
{
    struct hs *h = arg;
    size_t n = bufferevent_read(bev, h->srv_got, sizeof h->srv_got - 1);
    h->srv_got[n] = '\0';
    event_base_loopbreak(h->base);
}

/* Server side upgraded by tlsctx_upgrade after plaintext was already buffered; client side
 * a libevent OpenSSL bufferevent limited to max_version (0 = no limit). */
static void handshake(int max_version, struct hs *h, char *desc, size_t desclen)
{
    char cert[128], key[128], err[512] = "";
    path(cert, sizeof cert, dir_a, "node.pem");
    path(key, sizeof key, dir_a, "node.key");
    struct tlsctx *t = tlsctx_new(cert, key, err, sizeof err);
    assert_non_null(t);
    void *cctx = tlsctx_client_new(NULL, NULL, err, sizeof err);
    assert_non_null(cctx);
    if (max_version) {
        SSL_CTX_set_min_proto_version(cctx, 0);
        SSL_CTX_set_max_proto_version(cctx, max_version);
        SSL_CTX_set_security_level(cctx, 0);   /* let this client really offer TLS 1.1 */
    }
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);     /* as the listener's sockets are */
    evutil_make_socket_nonblocking(sv[1]);
    memset(h, 0, sizeof *h);
    h->base = event_base_new();
    struct bufferevent *srv = bufferevent_socket_new(h->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_enable(srv, EV_READ);
    /* Plaintext the client "pipelined" behind STARTTLS: read into the input buffer. */
    assert_int_equal(write(sv[1], "MAIL FROM:<evil@x>\r\n", 20), 20);
    struct timeval tick = {0, 100000};
    event_base_loopexit(h->base, &tick);
    event_base_dispatch(h->base);
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(srv)), 20);

    assert_int_equal(tlsctx_upgrade(t, h->base, &srv, false, err, sizeof err), 0);
    bufferevent_setcb(srv, srv_read, NULL, srv_event, h);
    bufferevent_enable(srv, EV_READ | EV_WRITE);
    SSL *ssl = SSL_new(cctx);
    struct bufferevent *cli = bufferevent_openssl_socket_new(
        h->base, sv[1], ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(cli);
    bufferevent_setcb(cli, NULL, NULL, cli_event, h);
    bufferevent_enable(cli, EV_READ | EV_WRITE);
    struct timeval limit = {10, 0};
    event_base_loopexit(h->base, &limit);
    event_base_dispatch(h->base);
    tlsctx_describe(srv, desc, desclen);
    if (h->srv_ok && h->cli_ok) {
        /* The first bytes the server reads are the client's protected ones, not the
         * plaintext buffered before the upgrade. */
        bufferevent_write(cli, "EHLO ok\r\n", 9);
        event_base_loopexit(h->base, &limit);
        event_base_dispatch(h->base);
    }
    bufferevent_free(cli);
    bufferevent_free(srv);
    event_base_free(h->base);
    tlsctx_client_free(cctx);
    tlsctx_free(&t);
}

static void handshake_discards_plaintext_and_describes(void **state)
{
    struct hs h;
    char desc[128] = "x";
    handshake(0, &h, desc, sizeof desc);
    assert_true(h.srv_ok && h.cli_ok && !h.failed);
    assert_true(strncmp(desc, "TLSv1.2:", 8) == 0 || strncmp(desc, "TLSv1.3:", 8) == 0);
    assert_true(strlen(desc) > 8);
    assert_string_equal(h.srv_got, "EHLO ok\r\n");
}

static void tls11_client_is_refused(void **state)
{
    struct hs h;
    char desc[128];
    handshake(TLS1_1_VERSION, &h, desc, sizeof desc);
    assert_true(h.failed);
    assert_false(h.srv_ok && h.cli_ok);
}

static void describe_plain_bufferevent_is_empty(void **state)
{
    struct event_base *base = event_base_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    char desc[64] = "x";
    tlsctx_describe(bev, desc, sizeof desc);
    assert_string_equal(desc, "");
    bufferevent_free(bev);
    close(sv[1]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_pair_loads),
        cmocka_unit_test(key_of_another_pair_is_refused),
        cmocka_unit_test(missing_files_are_named),
        cmocka_unit_test(handshake_discards_plaintext_and_describes),
        cmocka_unit_test(tls11_client_is_refused),
        cmocka_unit_test(describe_plain_bufferevent_is_empty),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
