/*
 * reload.c - when to reload (SIGHUP, a change in the policy file's
 * directory) and how (reload_now(): read, compare, build, swap, record).
 *
 * The directory, not the file, is watched: editors replace a file by rename
 * and the kubelet swaps a "..data" symlink, and a watch on the file would
 * follow the old inode. The watch itself ends when the directory goes away
 * (removed, moved, its volume unmounted): the kernel then sends
 * IN_DELETE_SELF, IN_MOVE_SELF or IN_UNMOUNT and finally IN_IGNORED. levee
 * drops that watch, looks for the directory every RELOAD_REARM_MS, and once
 * it is back watches it again and reloads. Invariant: `watch_wd` is the live
 * watch, or -1 while `ev_rearm` is pending.
 */
#include "reload.h"
#include "resilience/tiers.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "log.h"
#include "net/worker.h"
#include "pipeline.h"
#include "server.h"

#define RELOAD_DEBOUNCE_MS 50
/* a file changed less than this ago may still be being written: the watch
 * waits that long again, up to RELOAD_SETTLE_TRIES times */
#define RELOAD_SETTLE_MS 50
#define RELOAD_SETTLE_TRIES 20
#define RELOAD_REARM_MS 500
/* what ends a watch; IN_IGNORED (always last) and IN_UNMOUNT come unasked */
#define RELOAD_WATCH_GONE (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)
#define RELOAD_WATCH_MASK                                                                                  \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR)

static struct server *reload_srv; /* handed down by reload_init() */
static struct event *ev_hup, *ev_inotify, *ev_debounce, *ev_rearm;
static int inotify_fd = -1;
static int watch_wd = -1;
static char watch_dir[LV_PATH_MAX];

static const char *const reload_trigger_names[] = {"SIGHUP", "POST /reload", "file change"};

struct reload_keys {
	char list[RELOAD_KEYS_MAX];
	size_t len;
};

static void reload_static_key(const char *section, const char *key, void *arg)
{
	struct reload_keys *k = arg;
	log_warn("policy: [%s] %s changed but takes a restart; the running value stays until then", section, key);
	int n = snprintf(k->list + k->len, sizeof(k->list) - k->len, "%s%s.%s", k->len ? "," : "", section, key);
	if (n > 0 && (size_t)n < sizeof(k->list) - k->len)
		k->len += (size_t)n;
}

/* Reads the file into a runtime ready to swap in (*out, RELOAD_APPLIED), or
 * says why not: the file is the running policy's (RELOAD_UNCHANGED), or it
 * is bad (RELOAD_REFUSED, with its errors in `d`). */
static enum reload_result reload_build(const struct lv_policy *running, struct lv_diag *d, struct runtime **out,
                                       struct reload_keys *keys)
{
	struct server *s = reload_srv;
	struct lv_policy *p = NULL;
	char err[512];
	if (policy_load_file(s->policy_path, &s->ov, &p, d) != LV_OK)
		return RELOAD_REFUSED;
	if (strcmp(p->checksum, LV_POLICY_EMPTY_CHECKSUM) == 0) {
		/* a file being rewritten in place is empty for a moment; built-in
		 * defaults in place of a policy are never what a reload means.
		 * Judged on the bytes read, not on a stat() before the read. */
		policy_unref(p);
		diag_add(d, "%s:1: the file is empty (still being written?)", s->policy_path);
		return RELOAD_REFUSED;
	}
	if (strcmp(running->checksum, p->checksum) == 0) {
		policy_unref(p);
		return RELOAD_UNCHANGED;
	}
	if (runtime_build(p, out, err, sizeof(err)) != LV_OK) {
		diag_add(d, "%s: %s", s->policy_path, err);
		return RELOAD_REFUSED;
	}
	if (pipeline_runtime_attach(*out, err, sizeof(err)) != LV_OK) {
		diag_add(d, "%s: %s", s->policy_path, err);
		runtime_unref(*out);
		*out = NULL;
		return RELOAD_REFUSED;
	}
	if (server_bulkhead_threads(s, *out, err, sizeof(err)) != LV_OK || server_workers_start(s) != LV_OK) {
		diag_add(d, "%s: bulkhead threads: %s", s->policy_path, err);
		runtime_unref(*out);
		*out = NULL;
		return RELOAD_REFUSED;
	}
	/* last, so that a refused file warns of nothing; no thread has it yet */
	policy_keep_static((*out)->policy, running, reload_static_key, keys);
	return RELOAD_APPLIED;
}

static void reload_swap(struct runtime *rt)
{
	server_protection_apply(reload_srv, rt);
	struct runtime *old = runtime_slot_swap(&reload_srv->runtime, rt);
	tiers_apply(rt->policy); /* after the swap: the tick takes the current runtime */
	log_set_level(rt->policy->log_level);
	for (unsigned i = 0; i < reload_srv->nworkers; i++)
		worker_notify_policy(reload_srv->workers[i]);
	runtime_unref(old);
	probe_kick();
}

enum reload_result reload_now(enum reload_trigger by, struct lv_diag *diag)
{
	struct server *s = reload_srv;
	struct lv_diag local = {0};
	struct lv_diag *d = diag ? diag : &local;
	const char *how = reload_trigger_names[by];
	if (!s->policy_path[0]) {
		/* not an attempt: there is no file whose status could be reported */
		log_info("policy reload (%s): levee runs on built-in defaults, nothing to reload", how);
		diag_add(d, "levee runs on built-in defaults (no --policy FILE): nothing to reload");
		diag_free(&local);
		return RELOAD_REFUSED;
	}
	size_t before = d->n;
	struct reload_keys keys = {"", 0};
	struct runtime *rt = NULL;
	struct runtime *cur = server_runtime_acquire(s);
	enum reload_result r = reload_build(cur->policy, d, &rt, &keys);
	char running[sizeof(cur->policy->checksum)];
	memcpy(running, cur->policy->checksum, sizeof(running));
	runtime_unref(cur);

	switch (r) {
	case RELOAD_APPLIED:
		reload_swap(rt);
		log_info("policy reload (%s): applied %s (checksum %s)%s", how, s->policy_path, rt->policy->checksum,
		         keys.len ? "; some keys take a restart" : "");
		break;
	case RELOAD_UNCHANGED:
		/* the watch sees every change in the directory, most of them to other files */
		log_msg(by == RELOAD_BY_WATCH ? LV_LOG_DEBUG : LV_LOG_INFO,
		        "policy reload (%s): %s unchanged (checksum %s)", how, s->policy_path, running);
		break;
	default:
		for (size_t i = before; i < d->n; i++)
			log_error("policy reload failed, keeping the running policy: %s", d->lines[i]);
		log_warn("policy reload (%s): refused %s with %zu error(s); still running checksum %s", how,
		         s->policy_path, d->n - before, running);
		break;
	}
	struct timeval now;
	gettimeofday(&now, NULL);
	reload_status_record(&s->reload, r, keys.list, d, before, (double)now.tv_sec + (double)now.tv_usec / 1e6);
	diag_free(&local);
	return r;
}

static void reload_signal(evutil_socket_t sig, short what, void *arg)
{
	reload_now(RELOAD_BY_SIGHUP, NULL);
}

static unsigned settle_tries; /* debounce rounds spent waiting for the file to settle */

static void reload_soon(void)
{
	struct timeval tv = {0, RELOAD_DEBOUNCE_MS * 1000};
	event_add(ev_debounce, &tv);
}

/* True when the policy file changed less than RELOAD_SETTLE_MS ago: a
 * writer that truncated it may not have written it yet. */
static bool reload_file_unsettled(void)
{
	struct stat st;
	struct timespec now;
	if (stat(reload_srv->policy_path, &st) != 0 || clock_gettime(CLOCK_REALTIME, &now) != 0)
		return false;
	int64_t age_ms = ((int64_t)now.tv_sec - (int64_t)st.st_mtim.tv_sec) * 1000 +
	                 ((int64_t)now.tv_nsec - (int64_t)st.st_mtim.tv_nsec) / 1000000;
	return age_ms >= 0 && age_ms < RELOAD_SETTLE_MS;
}

static void reload_debounced(evutil_socket_t fd, short what, void *arg)
{
	if (settle_tries < RELOAD_SETTLE_TRIES && reload_file_unsettled()) {
		settle_tries++;
		reload_soon();
		return;
	}
	settle_tries = 0;
	reload_now(RELOAD_BY_WATCH, NULL);
}

static void reload_rearm_later(void)
{
	struct timeval tv;
	tv_ms(&tv, RELOAD_REARM_MS);
	event_add(ev_rearm, &tv);
}

static void reload_rearm(evutil_socket_t fd, short what, void *arg)
{
	watch_wd = inotify_add_watch(inotify_fd, watch_dir, RELOAD_WATCH_MASK);
	if (watch_wd < 0) {
		reload_rearm_later();
		return;
	}
	log_info("policy directory %s is back; watching it again", watch_dir);
	reload_soon(); /* whatever it holds now may differ from what runs */
}

static void reload_watch_lost(void)
{
	/* after IN_IGNORED the kernel has dropped it already (EINVAL); after
	 * IN_MOVE_SELF it would go on watching the directory at its new place */
	inotify_rm_watch(inotify_fd, watch_wd);
	watch_wd = -1;
	log_warn("policy directory %s is gone (removed, moved or unmounted); looking for it every %d ms", watch_dir,
	         RELOAD_REARM_MS);
	reload_rearm_later();
}

/* Any change in the directory: wait for the burst to settle, then reload;
 * an unchanged checksum makes that a no-op. */
static void reload_inotify(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool lost = false;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (const char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			lost |= ev->wd == watch_wd && (ev->mask & RELOAD_WATCH_GONE);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (lost)
		reload_watch_lost();
	reload_soon();
}

static enum reload_result reload_by_admin(struct lv_diag *diag)
{
	return reload_now(RELOAD_BY_ADMIN, diag);
}

int reload_init(struct server *s)
{
	struct event_base *base = s->main_base;
	reload_srv = s;
	s->reload_hook = reload_by_admin;
	memcpy(s->reload.started_checksum, server_runtime(s)->policy->checksum, sizeof(s->reload.started_checksum));
	ev_hup = evsignal_new(base, SIGHUP, reload_signal, NULL);
	if (!ev_hup || event_add(ev_hup, NULL) < 0)
		return LV_ERR;
	if (!s->policy_path[0])
		return LV_OK;
	ev_debounce = evtimer_new(base, reload_debounced, NULL);
	ev_rearm = evtimer_new(base, reload_rearm, NULL);
	if (!ev_debounce || !ev_rearm)
		return LV_ERR;
	char path[LV_PATH_MAX];
	snprintf(path, sizeof(path), "%s", s->policy_path);
	snprintf(watch_dir, sizeof(watch_dir), "%s", dirname(path));
	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (inotify_fd >= 0)
		watch_wd = inotify_add_watch(inotify_fd, watch_dir, RELOAD_WATCH_MASK);
	if (watch_wd < 0) {
		log_warn("cannot watch %s for changes (%s); reload with SIGHUP", s->policy_path, strerror(errno));
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
	if (ev_rearm)
		event_free(ev_rearm);
	if (inotify_fd >= 0)
		close(inotify_fd);
	ev_hup = ev_inotify = ev_debounce = ev_rearm = NULL;
	inotify_fd = watch_wd = -1;
}
