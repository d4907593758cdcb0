// floor.c — what a check costs this machine when the client does nothing else: one keep-alive
// loopback connection to tttsim, a timerfd for the pace (±3 % jitter, as tttd's pacer) and epoll,
// the same lookup request tttd sends, the answer read until its Content-Length. Its CPU per request
// is the part of tttd's CPU per check that no code in tttd can remove (two wakes a check, the
// loopback send that also runs tttsim's receive path); bench/detection/steady gives tttd's.
//
//   cc -O2 -o /tmp/floor bench/detection/floor.c
//   tttsim --listen 127.0.0.1:PORT --accounts 1000 &
//   /tmp/floor PORT RATE SECONDS ACCOUNTS      e.g. /tmp/floor 8080 16.67 60 1000
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(const struct rusage *r) {
    return r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + r->ru_stime.tv_sec + r->ru_stime.tv_usec / 1e6;
}

static void arm(int timer, double at) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)at;
    spec.it_value.tv_nsec = (long)((at - (time_t)at) * 1e9);
    timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor PORT RATE SECONDS ACCOUNTS\n");
        return 2;
    }
    int port = atoi(argv[1]), seconds = atoi(argv[3]), accounts = atoi(argv[4]);
    double rate = atof(argv[2]);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("floor: connect");
        return 1;
    }
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int poll = epoll_create1(0), timer = timerfd_create(CLOCK_MONOTONIC, 0);
    struct epoll_event readable = {.events = EPOLLIN, .data.fd = sock}, fired = {.events = EPOLLIN, .data.fd = timer};
    epoll_ctl(poll, EPOLL_CTL_ADD, sock, &readable);
    epoll_ctl(poll, EPOLL_CTL_ADD, timer, &fired);

    static char answer[1 << 16];
    char request[2048];
    size_t have = 0;
    long requests = 0, answers = 0;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    double start = now(), next = start + 0.05;
    arm(timer, next);
    while (now() - start < seconds) {
        struct epoll_event events[4];
        int count = epoll_wait(poll, events, 4, -1);
        for (int i = 0; i < count; i++) {
            if (events[i].data.fd == timer) {
                unsigned long long expirations;
                read(timer, &expirations, sizeof expirations);
                int length = snprintf(request, sizeof request,
                    "GET /api-live/user/room/?aid=1988&app_name=tiktok_web&device_platform=web_pc&channel=tiktok_web"
                    "&browser_language=fr-FR&browser_platform=Win32&browser_name=Mozilla&browser_version=5.0"
                    "&user_is_login=false&uniqueId=sim%ld&sourceType=54 HTTP/1.1\r\n"
                    "Host: 127.0.0.1:%d\r\n"
                    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
                    "Accept: application/json, text/plain, */*\r\nAccept-Language: fr-FR,fr;q=0.9,en;q=0.8\r\n"
                    "Accept-Encoding: gzip, deflate\r\nReferer: https://www.tiktok.com/\r\nOrigin: https://www.tiktok.com\r\n"
                    "Connection: keep-alive\r\nCookie: tt-target-idc=useast1a\r\n\r\n",
                    requests % accounts, port);
                write(sock, request, length);
                requests++;
                have = 0;
                next += (0.99 + 0.06 * (rand() / (double)RAND_MAX)) / rate;
                arm(timer, next);
            } else {
                ssize_t got = read(sock, answer + have, sizeof answer - 1 - have);
                if (got <= 0) {
                    fprintf(stderr, "floor: tttsim closed the connection\n");
                    return 1;
                }
                have += got;
                answer[have] = 0;
                char *end = strstr(answer, "\r\n\r\n");
                char *length = strcasestr(answer, "content-length:");
                if (end && length && (size_t)(end + 4 - answer) + atol(length + 15) <= have) answers++;
            }
        }
    }
    getrusage(RUSAGE_SELF, &after);
    double cpu = cpu_seconds(&after) - cpu_seconds(&before);
    printf("| rate | requests | answers | CPU per request | voluntary / involuntary switches per request |\n");
    printf("|---:|---:|---:|---:|---:|\n");
    printf("| %.2f req/s | %ld | %ld | %.3f ms | %.2f / %.2f |\n", rate, requests, answers, 1000 * cpu / requests,
           (after.ru_nvcsw - before.ru_nvcsw) / (double)requests, (after.ru_nivcsw - before.ru_nivcsw) / (double)requests);
    return 0;
}
