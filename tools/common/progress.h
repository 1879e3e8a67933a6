/*
 * progress: a one-line progress display for long operations (bulk put, get
 * and delete, export, import, check, reap, initial sync).
 *
 * The line is drawn on a file descriptor (normally stderr) only when that
 * descriptor is a terminal, so scripts and logs never see it.  It says what
 * is done of the total (when the caller knows one), the percentage, the
 * rate (units/s, and bytes/s when the caller counts bytes) and an ETA, as
 * rsync's --info=progress2 does:
 *
 *   bulk put: 4000/10000 keys 40% 8123 keys/s 1.2 MiB/s ETA 0:00:01
 *
 * It is rewritten in place with '\r', at most ten times a second however
 * often it is updated (the first frame of a step and of a wait are drawn at
 * once: see below).  kt_progress_end() draws it once more with the
 * final counts and the elapsed time in place of the ETA, and leaves it on
 * the screen with a newline (as rsync leaves its last line): the operator
 * keeps the count and the rate.  The state lives in the caller's struct: no
 * globals, any number of displays may exist (one per fd makes sense).
 *
 * An operation may have steps before its counted work, each counted in its
 * own unit (kt_progress_phase: reading and parsing a bulk file, in bytes),
 * and a step after it that reports nothing (kt_progress_wait: the commit
 * of one big transaction), so that the line never stands still on a
 * finished count while the work goes on:
 *
 *   bulk put: parsing 41.2 MiB/86.1 MiB 47% 95.3 MiB/s ETA 0:00:01
 *   bulk put: 10000/10000 keys 100%, committing...
 *
 * The final line's rate and time are the whole operation's, from init.
 */
#ifndef KVTOOLS_PROGRESS_H
#define KVTOOLS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kt_progress {
	int fd;
	bool enabled;      /* fd is a terminal; a caller may clear it, e.g. when
			      its data goes to the same screen */
	bool has_bytes;    /* the caller counts bytes: show bytes/s */
	bool bytes_first;  /* with has_bytes, the bytes done lead the line, as
			      in rsync's progress2 (kvsync -P) */
	bool approximate;  /* the total is an estimate: shown as "~N", and
			      dropped once done passes it */
	const char *what;  /* label; not owned, must outlive the display */
	const char *unit;  /* e.g. "keys"; not owned */
	uint64_t total;    /* 0 = unknown */
	uint64_t done;
	uint64_t bytes;    /* bytes done, when has_bytes */
	bool count_bytes;  /* done and total are bytes: shown in binary units */
	const char *phase; /* the step counted, before the main work (e.g.
			      "parsing"); NULL for the main work.  Not owned */
	const char *wait;  /* a step that reports nothing is running (e.g.
			      "committing"); NULL when none.  Not owned */
	int64_t start_ns;  /* monotonic time the step counted began */
	int64_t op_start_ns; /* monotonic time of init: the final line's time */
	int64_t last_ns;   /* monotonic time of the last draw */
};

/** The shortest interval between two draws: ten a second at most. */
#define KT_PROGRESS_REDRAW_NS 100000000

/**
 * Start a display on @fd labelled @what, counting @unit up to @total
 * (0 when the total is not known).  Nothing is drawn yet; the clock of the
 * rate and the ETA starts now.
 */
void kt_progress_init(struct kt_progress *p, int fd, const char *what, const char *unit,
		      uint64_t total);

/**
 * Set the total once it is known (0: unknown).  @approximate marks an
 * estimate (a count that may be off, or an upper bound): it is shown as
 * "~N", and when the work passes it the line goes on without a total.
 */
void kt_progress_set_total(struct kt_progress *p, uint64_t total, bool approximate);

/**
 * Begin a step of the operation counted on its own, from 0 of @total
 * (0: unknown) @unit, its rate and ETA from now: @phase names it on the
 * line ("bulk put: parsing 41.2 MiB/86.1 MiB ..."), NULL for the
 * operation's main work (the line without a step's name, the one
 * kt_progress_end draws).  @bytes: the counts are bytes, shown in binary
 * units (@unit is then not shown).  Drawn at once, with nothing done, as
 * an operation's first frame is: the operator sees the step begin (a
 * command has a handful of steps, so the ten a second hold but for those
 * few frames).
 */
void kt_progress_phase(struct kt_progress *p, const char *phase, const char *unit,
		       uint64_t total, bool bytes);

/**
 * A step that reports nothing is beginning (e.g. "committing"): the line
 * shows the counts so far and "@what..." in place of the rate and ETA,
 * drawn at once (the step may be long, and the last frame may be up to
 * 100 ms old), so the operator does not watch a finished count stand
 * still.  The next update or end replaces it.
 */
void kt_progress_wait(struct kt_progress *p, const char *what);

/** Record that @done units are done; redraws if the last draw is 100 ms old. */
void kt_progress_update(struct kt_progress *p, uint64_t done);

/** As kt_progress_update(), with @bytes done as well: the line shows bytes/s. */
void kt_progress_update_bytes(struct kt_progress *p, uint64_t done, uint64_t bytes);

/**
 * Erase the line, so that other output can be written to the screen it is
 * on; the next update draws it again (at once).  Nothing when disabled.
 */
void kt_progress_clear(struct kt_progress *p);

/**
 * The operation was refused before its work began (a file that cannot be
 * read, or is too large to be): erase what was drawn and draw nothing
 * more, so that only the message stays.
 */
void kt_progress_drop(struct kt_progress *p);

/**
 * The operation is over: draw the final counts of its main work with the
 * time since init (and the rate over it) and end the line with a newline,
 * so it stays.  Nothing when disabled.  The
 * display may be reused after init.
 */
void kt_progress_end(struct kt_progress *p);

/**
 * The text of the line (no '\r', no erase sequence) for the counts in @p at
 * monotonic time @now_ns: a pure function of its arguments, so that it can
 * be tested.  @final shows the elapsed time instead of the ETA.  (A caller
 * whose total was an estimate sets the real one, kt_progress_set_total(p,
 * done, false), when it succeeds, so that its last line reads N/N.)
 * @return the length written (truncated to @size - 1)
 */
size_t kt_progress_format(char *buf, size_t size, const struct kt_progress *p, int64_t now_ns,
			  bool final);

/**
 * @n made short, three digits: "2.50", "950", "12.3k", "4.56M"; binary (for
 * bytes, before a "B"):
 * "950 ", "12.3 Ki", "4.56 Mi".
 * @return buf
 */
const char *kt_progress_human(char *buf, size_t size, double n, bool binary);

#endif
