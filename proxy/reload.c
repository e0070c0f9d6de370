#include "reload.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "log.h"
#include "net/worker.h"
#include "server.h"

#define RELOAD_DEBOUNCE_MS 50

static struct event *ev_hup, *ev_inotify, *ev_debounce;
static int inotify_fd = -1;

static void warn_static(const char *section, const char *key, void *arg)
{
	log_warn("policy: [%s] %s changed but cannot change on reload; restart levee to apply it", section, key);
}

int reload_now(struct lv_diag *diag)
{
	struct lv_diag local = {0};
	struct lv_diag *d = diag ? diag : &local;
	struct timeval now;
	gettimeofday(&now, NULL);
	if (!srv.policy_path[0]) {
		diag_add(d, "levee runs on built-in defaults (no --policy FILE): nothing to reload");
		diag_free(&local);
		return LV_ERR;
	}
	size_t before = d->n;
	struct lv_policy *p = NULL;
	struct runtime *rt = NULL;
	char err[512] = "";
	int rc = policy_load_file(srv.policy_path, &srv.ov, &p, d);
	if (rc == LV_OK) {
		struct runtime *cur = server_runtime_acquire();
		bool same = strcmp(cur->policy->checksum, p->checksum) == 0;
		runtime_unref(cur);
		if (same) {
			log_debug("policy %s unchanged", srv.policy_path);
			policy_unref(p);
			diag_free(&local);
			return LV_OK;
		}
		rc = runtime_build(p, &rt, err, sizeof(err));
		if (rc != LV_OK)
			diag_add(d, "%s: %s", srv.policy_path, err);
	}
	srv.last_reload_ts = (double)now.tv_sec + (double)now.tv_usec / 1e6;
	if (rc != LV_OK) {
		srv.reloads_failed++;
		srv.last_reload_ok = 0;
		srv.last_error[0] = '\0';
		size_t off = 0;
		for (size_t i = before; i < d->n; i++) {
			log_error("policy reload failed, keeping the running policy: %s", d->lines[i]);
			if (off < sizeof(srv.last_error))
				off += (size_t)snprintf(srv.last_error + off, sizeof(srv.last_error) - off, "%s%s",
				                        off ? "\n" : "", d->lines[i]);
		}
		diag_free(&local);
		return LV_ERR;
	}
	struct runtime *old;
	pthread_mutex_lock(&srv.lock);
	old = srv.current;
	policy_static_changes(old->policy, rt->policy, warn_static, NULL);
	srv.current = rt;
	pthread_mutex_unlock(&srv.lock);
	log_set_level(rt->policy->log_level);
	for (unsigned i = 0; i < srv.nworkers; i++)
		worker_notify_policy(srv.workers[i]);
	runtime_unref(old);
	srv.reloads_ok++;
	srv.last_reload_ok = 1;
	srv.last_error[0] = '\0';
	log_info("policy reloaded from %s (checksum %s)", srv.policy_path, rt->policy->checksum);
	probe_kick();
	diag_free(&local);
	return LV_OK;
}

static void reload_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("SIGHUP: reloading the policy");
	if (reload_now(NULL) != LV_OK)
		return; /* already logged and counted */
}

static void reload_debounced(evutil_socket_t fd, short what, void *arg)
{
	if (reload_now(NULL) != LV_OK)
		return; /* already logged and counted */
}

/* Any change in the directory: editors replace files by rename, and the
 * kubelet swaps the "..data" symlink. Wait for the burst to settle, then
 * reload; an unchanged checksum makes that a no-op. */
static void reload_inotify(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	struct timeval tv = {0, RELOAD_DEBOUNCE_MS * 1000};
	event_add(ev_debounce, &tv);
}

int reload_init(struct event_base *base)
{
	ev_hup = evsignal_new(base, SIGHUP, reload_signal, NULL);
	if (!ev_hup || event_add(ev_hup, NULL) < 0)
		return LV_ERR;
	if (!srv.policy_path[0])
		return LV_OK;
	ev_debounce = evtimer_new(base, reload_debounced, NULL);
	if (!ev_debounce)
		return LV_ERR;
	char dir[LV_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", srv.policy_path);
	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (inotify_fd < 0 ||
	    inotify_add_watch(inotify_fd, dirname(dir),
	                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB) < 0) {
		log_warn("cannot watch %s for changes (%s); reload with SIGHUP", srv.policy_path, strerror(errno));
		return LV_OK;
	}
	ev_inotify = event_new(base, inotify_fd, EV_READ | EV_PERSIST, reload_inotify, NULL);
	if (!ev_inotify || event_add(ev_inotify, NULL) < 0)
		return LV_ERR;
	return LV_OK;
}

void reload_stop(void)
{
	if (ev_hup)
		event_free(ev_hup);
	if (ev_inotify)
		event_free(ev_inotify);
	if (ev_debounce)
		event_free(ev_debounce);
	if (inotify_fd >= 0)
		close(inotify_fd);
	ev_hup = ev_inotify = ev_debounce = NULL;
	inotify_fd = -1;
}
