/* progress.c: the live progress line of `belt run`.
 *
 *   belt: 412/1000 done, 4 running, 3 failed, 61.2/s, ETA 0m10s
 *
 * Shown on stderr only when stderr is a terminal and --quiet was not given
 * (the caller decides and passes `enabled`).  The line is redrawn in place
 * with "\r" and erased to the end with "\033[K", cut to the terminal width
 * so it never wraps.
 *
 * Pacing: nothing here sleeps or runs on a timer.  The engine waits for
 * results with a timeout taken from belt__progress_wait_ns(), so it wakes
 * when a redraw is due even if no job ends; a redraw happens at most every
 * BELT__PROGRESS_INTERVAL_NS (10 per second), however fast results come.
 *
 * "failed" counts every job that did not end ok (failed, timeout, error,
 * skipped, canceled).
 *
 * Rate and ETA: the rate is jobs done per second since the start; the ETA
 * is what remains at that rate (shown only when the total is known and at
 * least one job is done).
 *
 * With --bar (a command; the total is known, since --bar makes every job
 * first) the line starts with a bar of the done share:
 *
 *   belt: [########............]  41% 412/1000 done, 4 running, ...
 *
 * For a command the line is drawn on stderr whether or not it is a
 * terminal when --bar, --eta or --progress asks for it, as parallel does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/run.h"

void belt__progress_init(belt__progress *p, bool enabled, uint64_t total,
                         int64_t now_ns)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->total = total;
    p->start_ns = now_ns;
    p->last_draw_ns = now_ns - BELT__PROGRESS_INTERVAL_NS;
}

int64_t belt__progress_wait_ns(const belt__progress *p, int64_t now_ns)
{
    if (!p->enabled)
        return -1;
    int64_t due = p->last_draw_ns + BELT__PROGRESS_INTERVAL_NS - now_ns;
    return due > 1000000 ? due : 1000000; /* at least 1 ms */
}

static unsigned term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        return ws.ws_col;
    return 80;
}

void belt__progress_draw(belt__progress *p, const belt__runstats *st,
                         uint64_t running, int64_t now_ns, bool force)
{
    if (!p->enabled)
        return;
    if (!force && now_ns - p->last_draw_ns < BELT__PROGRESS_INTERVAL_NS)
        return;
    p->last_draw_ns = now_ns;

    uint64_t done = belt__runstats_total(st);
    uint64_t bad = belt__runstats_unsuccessful(st);
    double secs = (double)(now_ns - p->start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;

    char line[256], eta[48] = "";
    int n;
    if (p->bar && p->total) {
        enum { W = 20 };
        char bar[W + 1];
        unsigned fill = (unsigned)(done * W / p->total);
        for (unsigned i = 0; i < W; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        n = snprintf(line, sizeof line, "belt: [%s] %3u%% %" PRIu64 "/%" PRIu64
                     " done", bar, (unsigned)(done * 100 / p->total), done,
                     p->total);
    } else if (p->total)
        n = snprintf(line, sizeof line, "belt: %" PRIu64 "/%" PRIu64 " done",
                     done, p->total);
    else
        n = snprintf(line, sizeof line, "belt: %" PRIu64 " done", done);
    if (p->total && done > 0 && done < p->total && rate > 0) {
        char d[32];
        double left = (double)(p->total - done) / rate;
        snprintf(eta, sizeof eta, ", ETA %s",
                 belt__report_duration((int64_t)(left * 1e9), d, sizeof d));
    }
    snprintf(line + n, sizeof line - (size_t)n,
             ", %" PRIu64 " running, %" PRIu64 " failed, %.1f/s%s", running,
             bad, rate, eta);

    unsigned w = term_width() - 1;
    if (strlen(line) > w)
        line[w] = '\0';
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = true;
}

void belt__progress_clear(belt__progress *p)
{
    if (!p->enabled || !p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}
