/* redis_harness.h - what the Redis tests share: real redis-server processes
 * on free loopback ports, bounded waits, and clean-up. Included by one test
 * file each (static functions), so it has no .c of its own. */
#ifndef LEVEE_TEST_REDIS_HARNESS_H
#define LEVEE_TEST_REDIS_HARNESS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static bool have_exe(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[4400];
		snprintf(full, sizeof(full), "%s/%s", d, name);
		if (access(full, X_OK) == 0)
			return true;
	}
	return false;
}

/* A port nothing listens on right now: the kernel's choice for port 0. */
/* The probe socket is closed before the port is used, so the kernel may
 * offer the same port to the next call: never hand one out twice. */
static uint16_t free_port(void)
{
	static uint16_t handed[256];
	static unsigned nhanded;
	for (int tries = 0; tries < 100; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		socklen_t len = sizeof(sa);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
		close(fd);
		uint16_t port = ntohs(sa.sin_port);
		bool seen = false;
		for (unsigned i = 0; i < nhanded && !seen; i++)
			seen = handed[i] == port;
		if (!seen) {
			handed[nhanded++ % 256] = port;
			return port;
		}
	}
	fail_msg("no fresh loopback port after 100 tries");
	return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static redisContext *sync_connect_at(const char *ip, uint16_t port)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectWithTimeout(ip, port, tv);
	if (c && !c->err) {
		struct timeval ctv = {2, 0};
		redisSetTimeout(c, ctv);
		return c;
	}
	if (c)
		redisFree(c);
	return NULL;
}

static redisContext *sync_connect(uint16_t port)
{
	return sync_connect_at("127.0.0.1", port);
}

/* Polls PING at <ip> until the server answers PONG, up to <ms>. */
static void wait_ping_at(const char *ip, uint16_t port, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;
	for (;;) {
		redisContext *c = sync_connect_at(ip, port);
		if (c) {
			redisReply *rep = redisCommand(c, "PING");
			bool ok = rep && rep->type == REDIS_REPLY_STATUS &&
			          strcmp(rep->str, "PONG") == 0;
			if (rep)
				freeReplyObject(rep);
			redisFree(c);
			if (ok)
				return;
		}
		if (now_ms() > deadline)
			fail_msg("redis on %s port %u not ready within %u ms", ip, port, ms);
		pause_ms(10);
	}
}

static void wait_ping(uint16_t port, unsigned ms)
{
	wait_ping_at("127.0.0.1", port, ms);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

typedef bool (*cond_fn)(void *ctx);

/* Starts argv[0] with its output appended to <logpath>, killed with this
 * process; returns its pid. */
static inline pid_t spawn_logged(const char *logpath, char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* One throwaway redis-server on a free loopback port, in a new directory
 * /tmp/levee-<tag>-XXXXXX, answering PING when this returns; and a base
 * whose 5 ms tick wakes EVLOOP_ONCE, so that loop_until() sees its deadline. */
struct redis_temp {
	char dir[64];
	pid_t pid;
	uint16_t port;
	struct event_base *base;
	struct event *tick;
};

static inline void redis_temp_start(struct redis_temp *t, const char *tag)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/levee-%s-XXXXXX", tag);
	assert_non_null(mkdtemp(t->dir));
	t->base = event_base_new();
	assert_non_null(t->base);
	t->tick = event_new(t->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 5000};
	event_add(t->tick, &tv);
	t->port = free_port();
	char p[8], logpath[128];
	snprintf(p, sizeof(p), "%u", t->port);
	snprintf(logpath, sizeof(logpath), "%s/redis.log", t->dir);
	char *argv[] = {"redis-server", "--port", p,       "--bind", "127.0.0.1", "--save", "",
	                "--appendonly", "no",     "--dir", t->dir,   NULL};
	t->pid = spawn_logged(logpath, argv);
	wait_ping(t->port, 5000);
}

/* Kills the server (if it still runs) and cleans up. */
static inline void redis_temp_stop(struct redis_temp *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
	event_free(t->tick);
	event_base_free(t->base);
	nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs <base> until cond(ctx) holds; false on reaching the deadline. The
 * caller keeps a periodic event on <base> (on_tick) so each pass returns. */
static inline bool loop_until(struct event_base *base, cond_fn cond, void *ctx, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;
	while (!cond(ctx)) {
		if (now_ms() > deadline)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return true;
}

#endif
