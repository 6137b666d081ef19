/* srt_sink.c: bench tooling, not part of pushprobe. A libsrt listener that
 * accepts every caller, reads and discards what it sends, and counts the
 * callers, the bytes and libsrt's own receive losses and drops per
 * connection (srt_bstats). An independent peer, and far cheaper per caller
 * than the srt-tokio listener of examples/srt_sink.rs, whose output format
 * it shares so benches/compare.sh parses either.
 *
 * Build: gcc -O2 -o srt_sink benches/srt_sink.c $(pkg-config --cflags --libs srt)
 * Usage: srt_sink [ADDR:PORT] (default 127.0.0.1:0). Prints
 *   srt sink listening on ADDR:PORT
 * then, on SIGINT or SIGTERM,
 *   srt sink: N callers, B bytes, P packets, L lost, D dropped
 * where L is what the receivers saw missing (pktRcvLossTotal) and D what
 * they gave up on as too late to play (pktRcvDropTotal), summed over every
 * connection, and exits.
 */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <srt.h>

static volatile sig_atomic_t stop;

/* The totals so far, global so a stuck exit can still report them. */
static struct totals_g {
    volatile uint64_t callers, bytes;
} seen;

static size_t put_u64(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0, i = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) out[i++] = tmp[--n];
    return i;
}

/* libsrt has been seen to hang in a lock when closing thousands of
 * sockets: five seconds after the signal, report what was read and go
 * (async-signal-safe: write and _exit only). */
static void on_alarm(int sig) {
    (void)sig;
    char line[128];
    size_t n = 0;
    const char *a = "srt sink: ", *b = " callers, ", *c = " bytes (exit stuck in libsrt: no statistics)\n";
    memcpy(line + n, a, strlen(a)); n += strlen(a);
    n += put_u64(line + n, seen.callers);
    memcpy(line + n, b, strlen(b)); n += strlen(b);
    n += put_u64(line + n, seen.bytes);
    memcpy(line + n, c, strlen(c)); n += strlen(c);
    (void)!write(STDOUT_FILENO, line, n);
    _exit(1);
}

static void on_signal(int sig) {
    (void)sig;
    if (!stop) alarm(5);
    stop = 1;
}

struct totals {
    uint64_t callers, bytes, packets, lost, dropped;
};

/* Open connections and their last statistics: libsrt answers srt_bstats
 * only while a socket is not broken, so they are read once a second and
 * at the end, and a connection's last reading is what counts when it ends
 * (at most a second stale). */
struct conn {
    SRTSOCKET s;
    uint64_t packets, lost, dropped;
};
static struct conn *conns;
static size_t n_open, cap_open;

static void add_open(SRTSOCKET s) {
    if (n_open == cap_open) {
        cap_open = cap_open ? cap_open * 2 : 256;
        conns = realloc(conns, cap_open * sizeof *conns);
        if (!conns) { perror("realloc"); exit(1); }
    }
    conns[n_open++] = (struct conn){.s = s};
}

static void read_stats(struct conn *c) {
    SRT_TRACEBSTATS perf;
    if (srt_bstats(c->s, &perf, 0) == 0) {
        c->packets = (uint64_t)perf.pktRecvTotal;
        c->lost = (uint64_t)perf.pktRcvLossTotal;
        c->dropped = (uint64_t)perf.pktRcvDropTotal;
    }
}

static void add_stats(const struct conn *c, struct totals *t) {
    t->packets += c->packets;
    t->lost += c->lost;
    t->dropped += c->dropped;
}

/* A connection ended: count it and forget it. */
static void close_sock(int eid, SRTSOCKET s, struct totals *t) {
    srt_epoll_remove_usock(eid, s);
    for (size_t i = 0; i < n_open; i++) {
        if (conns[i].s == s) {
            read_stats(&conns[i]);
            add_stats(&conns[i], t);
            conns[i] = conns[--n_open];
            break;
        }
    }
    srt_close(s);
}

static int parse_addr(const char *arg, struct sockaddr_in *sa) {
    char host[64];
    const char *colon = strrchr(arg, ':');
    if (!colon || (size_t)(colon - arg) >= sizeof host) return -1;
    memcpy(host, arg, colon - arg);
    host[colon - arg] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int set_nonblocking(SRTSOCKET s) {
    int no = 0;
    return srt_setsockflag(s, SRTO_RCVSYN, &no, sizeof no) | srt_setsockflag(s, SRTO_SNDSYN, &no, sizeof no);
}

#define MAX_LISTENERS 16

/* A listener on its own UDP socket bound to `sa` with SO_REUSEPORT; a port
 * 0 in `sa` is replaced by the port the first one got. */
static SRTSOCKET listener(struct sockaddr_in *sa, int tsbpd) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    /* libsrt's 64 KB UDP buffer overflows at a few hundred callers; the
     * kernel caps this at net.core.rmem_max. */
    int udp_buf = 4 << 20;
    socklen_t len = sizeof *sa;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &udp_buf, sizeof udp_buf) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &udp_buf, sizeof udp_buf) != 0 ||
        bind(fd, (struct sockaddr *)sa, sizeof *sa) != 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) != 0) {
        perror("srt_sink: UDP socket");
        return SRT_INVALID_SOCK;
    }
    SRTSOCKET l = srt_create_socket();
    if (l == SRT_INVALID_SOCK || set_nonblocking(l) != 0 ||
        srt_setsockflag(l, SRTO_TSBPDMODE, &tsbpd, sizeof tsbpd) != 0 ||
        srt_setsockflag(l, SRTO_UDP_RCVBUF, &udp_buf, sizeof udp_buf) != 0 ||
        srt_setsockflag(l, SRTO_UDP_SNDBUF, &udp_buf, sizeof udp_buf) != 0 ||
        srt_bind_acquire(l, fd) != 0 || srt_listen(l, 4096) != 0) {
        fprintf(stderr, "srt_sink: %s\n", srt_getlasterror_str());
        return SRT_INVALID_SOCK;
    }
    return l;
}

int main(int argc, char **argv) {
    struct sockaddr_in sa;
    if (parse_addr(argc > 1 ? argv[1] : "127.0.0.1:0", &sa) != 0) {
        fprintf(stderr, "srt_sink: expected IPV4:PORT, got %s\n", argv[1]);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGALRM, on_alarm);
    srt_startup();
    srt_setloglevel(LOG_CRIT);
    /* SRT_SINK_TSBPD=0: no timestamp-based delivery (no play-out thread per
     * caller, packets read as they come, nothing dropped as too late). */
    const char *tsbpd_env = getenv("SRT_SINK_TSBPD");
    int tsbpd = !(tsbpd_env && strcmp(tsbpd_env, "0") == 0);
    /* SRT_SINK_LISTENERS=N (default 4): libsrt reads each UDP socket with
     * one thread, which a thousand callers saturate; N listeners on N UDP
     * sockets sharing the port (SO_REUSEPORT: the kernel keeps each
     * caller on one of them) use N threads. One run each at 2,000
     * callers on 2 busy cores: 52,213 packets lost with 4, 374,334 with 2. */
    const char *n_env = getenv("SRT_SINK_LISTENERS");
    int n_listeners = n_env ? atoi(n_env) : 4;
    if (n_listeners < 1 || n_listeners > MAX_LISTENERS) n_listeners = 4;
    SRTSOCKET ls[MAX_LISTENERS];
    int eid = srt_epoll_create();
    int in_err = SRT_EPOLL_IN | SRT_EPOLL_ERR;
    for (int i = 0; i < n_listeners; i++) {
        ls[i] = listener(&sa, tsbpd);
        if (ls[i] == SRT_INVALID_SOCK) return 1;
        srt_epoll_add_usock(eid, ls[i], &in_err);
    }
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    printf("srt sink listening on %s:%u\n", host, ntohs(sa.sin_port));
    fflush(stdout);

    struct totals t = {0};
    static char buf[1500];
    SRT_EPOLL_EVENT ev[1024];
    int64_t swept = srt_time_now();
    while (!stop) {
        if (srt_time_now() - swept >= 1000000) {
            for (size_t i = 0; i < n_open; i++) read_stats(&conns[i]);
            swept = srt_time_now();
        }
        int n = srt_epoll_uwait(eid, ev, 1024, 100);
        /* Read in batches: libsrt wakes the epoll once per packet played
         * out, so a pass per wakeup would cost more than libsrt itself.
         * The receive buffers hold what comes meanwhile (ACKs and NAKs are
         * libsrt's own threads' work, not delayed by this). */
        if (n > 0 && n < 1024) usleep(10000);
        for (int i = 0; i < n; i++) {
            SRTSOCKET s = ev[i].fd;
            SRTSOCKET l = SRT_INVALID_SOCK;
            for (int j = 0; j < n_listeners; j++) {
                if (ls[j] == s) l = s;
            }
            if (l != SRT_INVALID_SOCK) {
                struct sockaddr_storage peer;
                int plen = sizeof peer;
                SRTSOCKET c;
                while ((c = srt_accept(l, (struct sockaddr *)&peer, &plen)) != SRT_INVALID_SOCK) {
                    set_nonblocking(c);
                    srt_epoll_add_usock(eid, c, &in_err);
                    add_open(c);
                    t.callers++;
                    seen.callers = t.callers;
                    plen = sizeof peer;
                }
                continue;
            }
            for (;;) {
                int r = srt_recvmsg(s, buf, sizeof buf);
                if (r > 0) {
                    t.bytes += (uint64_t)r;
                    seen.bytes = t.bytes;
                    continue;
                }
                if (r == SRT_ERROR && srt_getlasterror(NULL) == SRT_EASYNCRCV) break;
                close_sock(eid, s, &t); /* closed by the caller, or broken */
                break;
            }
        }
    }
    for (size_t i = 0; i < n_open; i++) {
        read_stats(&conns[i]);
        add_stats(&conns[i], &t);
    }
    printf("srt sink: %llu callers, %llu bytes, %llu packets, %llu lost, %llu dropped\n",
           (unsigned long long)t.callers, (unsigned long long)t.bytes,
           (unsigned long long)t.packets, (unsigned long long)t.lost,
           (unsigned long long)t.dropped);
    fflush(stdout);
    /* The OS frees the rest: libsrt's cleanup of thousands of sockets is
     * slow and has been seen to hang. */
    _exit(0);
}
