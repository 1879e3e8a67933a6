/*
 * slowloris: a test helper that keeps COUNT connections to a kvsync daemon
 * busy greeting it one byte a second, as a slowloris attack does.  The
 * connections come from SOURCES loopback addresses, 127.0.1.1 onwards
 * (COUNT / SOURCES from each); a connection the daemon closes is opened
 * again a second later, so the pressure lasts.  Loopback only; it stops
 * after SECONDS or at SIGTERM.
 *
 *	slowloris PORT COUNT SOURCES SECONDS
 *
 * Prints "ready" once the first round of connections is open, and at the
 * end one line:
 *	opened N busy B cut C open O longest_cut_ms L
 * busy: closed by the daemon after saying it is busy; cut: closed without
 * that (the handshake deadline); longest_cut_ms: the longest a cut
 * connection lived.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024

struct slot {
	int fd;
	int64_t opened, next;  /* ms */
	size_t sent;           /* greeting bytes sent */
	char got[512];         /* the start of what the daemon sent */
	size_t got_len;
};

/* A kvsync greeting: magic, then a HELLO (version 1, flags 2: "I hold a
 * token"), then an AUTH frame that will never be right. */
static uint8_t greeting[8 + 45 + 37];

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_conn(int port, int source)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET};
	if (source > 0) {
		a.sin_addr.s_addr = htonl(0x7f000100u + (uint32_t)source);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd);
			return -1;
		}
	}
	/* A full accept queue makes connect wait for SYN retries: bound it. */
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: slowloris PORT COUNT SOURCES SECONDS\n");
		return 2;
	}
	int port = atoi(argv[1]), count = atoi(argv[2]), sources = atoi(argv[3]);
	int seconds = atoi(argv[4]);
	if (count < 1 || count > MAX_CONNS || sources < 1 || sources > 250 || seconds < 1) {
		fprintf(stderr, "slowloris: COUNT 1..%d, SOURCES 1..250, SECONDS >= 1\n", MAX_CONNS);
		return 2;
	}
	memcpy(greeting, "KVSYNC\0\1", 8);
	uint8_t hello[] = {0, 0, 0, 41, 1, 0, 0, 0, 1, 0, 0, 0, 2};
	memcpy(greeting + 8, hello, sizeof(hello));
	uint8_t auth[] = {0, 0, 0, 33, 2};
	memcpy(greeting + 8 + 45, auth, sizeof(auth));

	static struct slot s[MAX_CONNS];
	unsigned long opened = 0, busy = 0, cut = 0;
	int64_t longest_cut = 0, start = now_ms(), end = start + (int64_t)seconds * 1000;
	for (int i = 0; i < count; i++) {
		s[i].fd = open_conn(port, 1 + i % sources);
		s[i].opened = s[i].next = now_ms();
		opened += s[i].fd >= 0;
	}
	printf("ready\n");
	fflush(stdout);
	/* SIGTERM ends the attack early, summary and all. */
	signal(SIGTERM, on_term);
	while (!stop && now_ms() < end) {
		int64_t now = now_ms();
		for (int i = 0; i < count; i++) {
			struct slot *c = &s[i];
			if (c->fd < 0) {
				if (now >= c->next) {
					memset(c, 0, sizeof(*c));
					c->fd = open_conn(port, 1 + i % sources);
					c->opened = now;
					c->next = now + 1000;
					opened += c->fd >= 0;
				}
				continue;
			}
			/* What the daemon sent, and whether it closed. */
			ssize_t n;
			char buf[4096];
			bool closed = false;
			while ((n = read(c->fd, buf, sizeof(buf))) > 0) {
				size_t take = (size_t)n;
				if (take > sizeof(c->got) - c->got_len)
					take = sizeof(c->got) - c->got_len;
				memcpy(c->got + c->got_len, buf, take);
				c->got_len += take;
			}
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				closed = true;
			if (!closed && now >= c->next && c->sent < sizeof(greeting)) {
				if (write(c->fd, greeting + c->sent, 1) == 1)
					c->sent++;
				else if (errno != EAGAIN)
					closed = true;
				c->next = now + 1000;
			}
			if (!closed)
				continue;
			if (memmem(c->got, c->got_len, "busy", 4)) {
				busy++;
			} else {
				cut++;
				if (now - c->opened > longest_cut)
					longest_cut = now - c->opened;
			}
			close(c->fd);
			c->fd = -1;
			c->next = now + 1000;
		}
		poll(NULL, 0, 50);
	}
	unsigned long still = 0;
	for (int i = 0; i < count; i++) {
		if (s[i].fd >= 0) {
			still++;
			close(s[i].fd);
		}
	}
	printf("opened %lu busy %lu cut %lu open %lu longest_cut_ms %lld\n", opened, busy, cut,
	       still, (long long)longest_cut);
	return 0;
}
