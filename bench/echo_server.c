/*
 * A trivial keep-alive HTTP/1.1 server that answers every request with a canned token
 * pair. It exists only to show that the load generator is not the bottleneck: wrk runs
 * the same script (bench/wrk/chain.lua) against it, pinned like the real servers, and
 * must reach at least 3x the rate of anything it measures. The answer carries a refresh
 * token in the JSON body and in a cookie, so every receive mode of chain.lua parses it.
 *
 *   cc -O2 -o echo_server bench/echo_server.c && ./echo_server PORT
 *
 * One thread, epoll, 127.0.0.1 only. bench/harness.py compiles and runs it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUF_SIZE 65536
#define MAX_FD 65536

#define TOKEN "kfrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define BODY "{\"access_token\":\"eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl\",\"token_type\":\"Bearer\"," \
             "\"expires_in\":900,\"refresh_token\":\"" TOKEN "\",\"refresh\":\"" TOKEN "\"}"

static char response[1024];
static size_t response_len;

struct conn {
    char *buf;
    size_t len;
};
static struct conn conns[MAX_FD];

/* Content-Length of the request head [head, head+len), 0 if absent. */
static size_t content_length(const char *head, size_t len) {
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
        p = eol + 1;
    }
    return 0;
}

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    conns[fd].len = 0;
}

static void serve(int ep, int fd) {
    struct conn *c = &conns[fd];
    if (!c->buf && !(c->buf = malloc(BUF_SIZE))) { drop(ep, fd); return; }
    for (;;) {
        ssize_t n = read(fd, c->buf + c->len, BUF_SIZE - c->len);
        if (n == 0) { drop(ep, fd); return; }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            drop(ep, fd);
            return;
        }
        c->len += (size_t)n;
        if (c->len == BUF_SIZE) break;
    }
    size_t answers = 0, used = 0;
    for (;;) {
        char *head_end = memmem(c->buf + used, c->len - used, "\r\n\r\n", 4);
        if (!head_end) break;
        size_t head_len = (size_t)(head_end - (c->buf + used));
        size_t total = head_len + 4 + content_length(c->buf + used, head_len);
        if (used + total > c->len) break;
        used += total;
        answers++;
    }
    if (used) {
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    } else if (c->len == BUF_SIZE) {
        drop(ep, fd); /* a request larger than the buffer: not ours */
        return;
    }
    for (size_t i = 0; i < answers; i++) {
        size_t off = 0;
        while (off < response_len) {
            ssize_t w = write(fd, response + off, response_len - off);
            if (w < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                drop(ep, fd);
                return;
            }
            off += (size_t)w;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    response_len = (size_t)snprintf(response, sizeof response,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        "set-cookie: jwt=%s; Path=/; HttpOnly\r\ncontent-length: %zu\r\n\r\n%s",
        TOKEN, strlen(BODY), BODY);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 1024)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, events[MAX_EVENTS];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else {
                serve(ep, fd);
            }
        }
    }
}
