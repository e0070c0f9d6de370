/*
 * probe.c - is the upstream reachable? A TCP connect every probe_interval,
 * on the main thread. /readyz reports the last result, so a pod whose
 * service is down is taken out of rotation without levee guessing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin.h"
#include "log.h"
#include "net/worker.h"
#include "server.h"

static struct event_base *probe_base;
static struct event *probe_timer;
static struct event *probe_ev; /* the connect in flight */
static int probe_fd = -1;

static void probe_set(int ok)
{
	int old = atomic_exchange(&srv.upstream_reachable, ok);
	if (old != ok) {
		if (ok)
			log_info("upstream is reachable");
		else
			log_warn("upstream is not reachable");
	}
}

static void probe_done(int ok)
{
	if (probe_ev) {
		event_free(probe_ev);
		probe_ev = NULL;
	}
	if (probe_fd >= 0) {
		close(probe_fd);
		probe_fd = -1;
	}
	probe_set(ok);
}

static void probe_result(evutil_socket_t fd, short what, void *arg)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (what & EV_TIMEOUT) {
		probe_done(0);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	probe_done(err == 0);
}

static void probe_fire(evutil_socket_t unused, short what, void *arg)
{
	if (probe_fd >= 0)
		return; /* the previous probe is still waiting for its timeout */
	struct runtime *rt = server_runtime_acquire();
	uint64_t timeout = rt->policy->up.connect_timeout_ms;
	int fd = socket(rt->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		runtime_unref(rt);
		probe_set(0);
		return;
	}
	int rc = connect(fd, (struct sockaddr *)&rt->up_addr, rt->up_len);
	runtime_unref(rt);
	if (rc == 0) {
		close(fd);
		probe_set(1);
		return;
	}
	if (errno != EINPROGRESS) {
		close(fd);
		probe_set(0);
		return;
	}
	probe_fd = fd;
	probe_ev = event_new(probe_base, fd, EV_WRITE, probe_result, NULL);
	struct timeval tv;
	tv_ms(&tv, timeout);
	if (!probe_ev || event_add(probe_ev, &tv) < 0)
		probe_done(0);
}

static void probe_schedule(void)
{
	struct runtime *rt = server_runtime_acquire();
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

int probe_start(struct event_base *base)
{
	probe_base = base;
	probe_timer = evtimer_new(base, probe_tick, NULL);
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
	probe_done(atomic_load(&srv.upstream_reachable));
	if (probe_timer)
		event_free(probe_timer);
	probe_timer = NULL;
}
