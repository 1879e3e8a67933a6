/*
 * notify_recv: the systemd side of sd_notify, for tests of Type=notify
 * readiness.  Binds a datagram socket at PATH (what NOTIFY_SOCKET names),
 * prints each message it receives on one line (newlines between the
 * assignments become spaces), flushed, and exits 0 once a message holds
 * READY=1, or 1 when TIMEOUT seconds pass without one.
 *
 *   notify_recv PATH TIMEOUT
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: notify_recv PATH TIMEOUT\n");
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify_recv: path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "notify_recv: cannot bind %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	long long end = now_ms() + atoll(argv[2]) * 1000;
	for (;;) {
		long long left = end - now_ms();
		if (left <= 0) {
			fprintf(stderr, "notify_recv: no READY=1 within %s s\n", argv[2]);
			return 1;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char msg[4096];
		ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n < 0)
			continue;
		msg[n] = 0;
		for (ssize_t i = 0; i < n; i++)
			if (msg[i] == '\n')
				msg[i] = ' ';
		printf("%s\n", msg);
		fflush(stdout);
		if (strstr(msg, "READY=1"))
			return 0;
	}
}
