/*
 * probe.c - is the upstream reachable? A TCP connect every probe_interval,
 * on the main thread. /readyz reports the last result, so a pod whose
 * service is down is taken out of rotation without levee guessing.
 *
 * The log says so too: the first result, with the reason when it is a
 * failure (an upstream down at start-up is the first thing an operator
 * needs to know), then each change, at most one line per PROBE_LOG_GAP_US
 * so that a flapping upstream does not flood it; a change held back is
 * logged when the gap ends, with the count of changes it stands for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin.h"
#include "log.h"
#include "net/worker.h"
#include "server.h"

#define PROBE_LOG_GAP_US (5 * 1000 * 1000)

static struct server *probe_srv; /* handed down by probe_start() */
static struct event_base *probe_base;
static struct event *probe_timer;
static struct event *probe_ev; /* the connect in flight */
static int probe_fd = -1;
static uint64_t probe_timeout_ms; /* of the connect in flight */
static struct log_state probe_log = LOG_STATE_INIT;

/* `why` says what failed; NULL when `ok`. */
static void probe_set(int ok, const char *why)
{
	atomic_store(&probe_srv->upstream_reachable, ok);
	unsigned changes;
	if (!log_state_set(&probe_log, ok, now_us(), PROBE_LOG_GAP_US, &changes))
		return;
	char more[96] = "";
	if (changes == 0)
		snprintf(more, sizeof(more), " (at start-up)");
	else if (changes > 1)
		snprintf(more, sizeof(more), " (after %u changes in %d s, the others not logged)", changes,
		         PROBE_LOG_GAP_US / 1000000);
	struct runtime *rt = server_runtime_acquire(probe_srv);
	if (ok)
		log_info("upstream %s is reachable%s", rt->up_text, more);
	else
		log_warn("upstream %s is not reachable%s: %s", rt->up_text, more, why);
	runtime_unref(rt);
}

static void probe_done(int ok, const char *why)
{
	if (probe_ev) {
		event_free(probe_ev);
		probe_ev = NULL;
	}
	if (probe_fd >= 0) {
		close(probe_fd);
		probe_fd = -1;
	}
	probe_set(ok, why);
}

static void probe_result(evutil_socket_t fd, short what, void *arg)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (what & EV_TIMEOUT) {
		char why[64];
		snprintf(why, sizeof(why), "connect timed out after %llu ms", (unsigned long long)probe_timeout_ms);
		probe_done(0, why);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	probe_done(err == 0, err ? strerror(err) : NULL);
}

static void probe_fire(evutil_socket_t unused, short what, void *arg)
{
	if (probe_fd >= 0)
		return; /* the previous probe is still waiting for its timeout */
	struct runtime *rt = server_runtime_acquire(probe_srv);
	probe_timeout_ms = rt->policy->up.connect_timeout_ms;
	int fd = socket(rt->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno;
		runtime_unref(rt);
		probe_set(0, strerror(err));
		return;
	}
	int rc = connect(fd, (struct sockaddr *)&rt->up_addr, rt->up_len);
	int err = errno;
	runtime_unref(rt);
	if (rc == 0) {
		close(fd);
		probe_set(1, NULL);
		return;
	}
	if (err != EINPROGRESS) {
		close(fd);
		probe_set(0, strerror(err));
		return;
	}
	probe_fd = fd;
	probe_ev = event_new(probe_base, fd, EV_WRITE, probe_result, NULL);
	struct timeval tv;
	tv_ms(&tv, probe_timeout_ms);
	if (!probe_ev || event_add(probe_ev, &tv) < 0)
		probe_done(0, "cannot wait for the connect (out of memory)");
}

static void probe_schedule(void)
{
	struct runtime *rt = server_runtime_acquire(probe_srv);
	struct timeval tv;
	tv_ms(&tv, rt->policy->up.probe_interval_ms);
	runtime_unref(rt);
	event_add(probe_timer, &tv);
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
	probe_fire(-1, 0, NULL);
	probe_schedule();
}

int probe_start(struct server *s)
{
	probe_srv = s;
	probe_base = s->main_base;
	probe_timer = evtimer_new(probe_base, probe_tick, NULL);
	if (!probe_timer)
		return LV_ERR;
	probe_fire(-1, 0, NULL);
	probe_schedule();
	return LV_OK;
}

void probe_kick(void)
{
	if (!probe_timer)
		return;
	event_del(probe_timer);
	probe_tick(-1, 0, NULL);
}

void probe_stop(void)
{
	probe_done(atomic_load(&probe_srv->upstream_reachable), "levee is stopping");
	if (probe_timer)
		event_free(probe_timer);
	probe_timer = NULL;
}
