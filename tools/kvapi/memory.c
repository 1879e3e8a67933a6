/*
 * memory: the one budget of bytes kvapi holds for request bodies, the
 * copies handlers make of them, value replies and large JSON replies.
 *
 * With 256 connections a client could otherwise make kvapi hold 256 bulk
 * bodies of 100 MiB at once.  Bytes are reserved before they are
 * allocated (a body's announced length before any of it is read, a
 * chunked body as it grows, a value before it is copied) and given back
 * when they are freed.  A reservation that does not fit waits a bounded
 * time for others to give bytes back, then fails, and the request is
 * refused with 503: clients retry, and nothing is half done.
 */
#include "kvapi.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

int ka_budget_init(struct ka_budget *b, uint64_t max, unsigned wait_ms)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc)
		return -rc;
	/* Waits are measured on the monotonic clock: a clock step neither
	 * cuts them short nor stretches them. */
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(&b->room, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return -rc;
	rc = pthread_mutex_init(&b->lock, NULL);
	if (rc) {
		pthread_cond_destroy(&b->room);
		return -rc;
	}
	b->max = max;
	b->used = 0;
	b->wait_ms = wait_ms;
	return 0;
}

void ka_budget_destroy(struct ka_budget *b)
{
	pthread_cond_destroy(&b->room);
	pthread_mutex_destroy(&b->lock);
}

int ka_budget_take(struct ka_budget *b, uint64_t n, bool wait)
{
	if (n == 0)
		return 0;
	if (n > b->max)
		return -EAGAIN;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += b->wait_ms / 1000;
	until.tv_nsec += (long)(b->wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&b->lock);
	while (b->max - b->used < n) {
		if (!wait || rc == ETIMEDOUT) {
			pthread_mutex_unlock(&b->lock);
			return -EAGAIN;
		}
		rc = pthread_cond_timedwait(&b->room, &b->lock, &until);
	}
	b->used += n;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void ka_budget_give(struct ka_budget *b, uint64_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&b->lock);
	b->used = n > b->used ? 0 : b->used - n;
	pthread_cond_broadcast(&b->room);
	pthread_mutex_unlock(&b->lock);
}

uint64_t ka_budget_used(struct ka_budget *b)
{
	pthread_mutex_lock(&b->lock);
	uint64_t n = b->used;
	pthread_mutex_unlock(&b->lock);
	return n;
}

int ka_req_hold(struct ka_req *r, uint64_t n)
{
	int rc = ka_budget_take(&r->srv->mem, n, true);
	if (!rc)
		r->held += n;
	return rc;
}

void ka_req_unhold(struct ka_req *r, uint64_t n)
{
	if (n > r->held)
		n = r->held;
	r->held -= n;
	ka_budget_give(&r->srv->mem, n);
}

const char *ka_size_show(uint64_t n, char *buf, size_t size)
{
	static const char *const units[] = {"GiB", "MiB", "KiB"};
	for (int i = 0; i < 3; i++) {
		uint64_t u = 1ull << (10 * (3 - i));
		if (n && n % u == 0) {
			snprintf(buf, size, "%" PRIu64 " %s", n / u, units[i]);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64 " bytes", n);
	return buf;
}

int ka_size_parse(const char *s, uint64_t *ret)
{
	uint64_t n = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	unsigned shift = 0;
	switch (*p) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 0: break;
	default: return -EINVAL;
	}
	if (shift) {
		p++;
		if (!strcmp(p, "iB") || !strcmp(p, "B"))
			p += strlen(p);
		if (*p || n > (UINT64_MAX >> shift))
			return -EINVAL;
		n <<= shift;
	}
	*ret = n;
	return 0;
}
