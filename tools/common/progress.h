/*
 * progress: a one-line progress display for long operations (bulk import,
 * export, check, reap, initial sync).
 *
 * The line is drawn on a file descriptor (normally stderr) only when that
 * descriptor is a terminal, so scripts and logs never see it.  It is
 * rewritten in place with '\r', at most about ten times a second however
 * often it is updated, and erased by kt_progress_end() so that the next
 * message starts on a clean line.  The state lives in the caller's struct:
 * no globals, any number of displays may exist (one per fd makes sense).
 */
#ifndef KVTOOLS_PROGRESS_H
#define KVTOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct kt_progress {
	int fd;
	bool enabled;      /* fd is a terminal; a caller may clear it, e.g. when
			      its data goes to the same screen */
	bool drawn;        /* a line is on the screen and must be erased */
	const char *what;  /* label; not owned, must outlive the display */
	const char *unit;  /* e.g. "keys"; not owned */
	uint64_t total;    /* 0 = unknown */
	uint64_t done;
	int64_t last_ns;   /* monotonic time of the last draw */
};

/**
 * Start a display on @fd labelled @what, counting @unit up to @total
 * (0 when the total is not known).  Nothing is drawn yet.
 */
void kt_progress_init(struct kt_progress *p, int fd, const char *what, const char *unit,
		      uint64_t total);

/** Record that @done units are done; redraws if the last draw is 100 ms old. */
void kt_progress_update(struct kt_progress *p, uint64_t done);

/** Erase the line (if one was drawn).  The display may be reused after init. */
void kt_progress_end(struct kt_progress *p);

#endif
