/*
 * sanitizer_threads.c - C11 <threads.h> over pthreads, for sanitizer builds
 * only (LEVEE_SANITIZE, LEVEE_TSAN; see CMakeLists.txt).
 *
 * librdkafka creates its threads and takes its locks through C11 threads
 * (thrd_create, mtx_lock, cnd_wait...). glibc implements them by calling its
 * internal pthread functions directly, so the sanitizer runtimes of gcc 12
 * and clang 14 never see them:
 *   - TSan crashes in its allocator at the first malloc of a thread it did
 *     not see start, and locks it does not see would leave it without the
 *     happens-before edges between librdkafka's threads and levee's
 *     callbacks, i.e. false races in levee's code;
 *   - LeakSanitizer scans the stacks of the threads it knows only, so what
 *     only librdkafka's running threads still point to (a consumer levee
 *     leaves to the process exit, kafka.c) is reported as leaked.
 * Defining the functions here, in the executable, takes precedence over
 * libc's for every library, and the pthread calls below go through the
 * sanitizer's interceptors. Newer runtimes intercept C11 threads themselves.
 *
 * Only the functions librdkafka 2.0.2 imports are here (nm -D librdkafka.so.1):
 * thrd_current, thrd_equal and the like need no synchronisation.
 *
 * glibc lays out mtx_t, cnd_t and once_flag as its pthread types (its own
 * implementation casts them the same way); the asserts hold it to that.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a pthread_cond_t");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is a pthread_once_t");
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is a pthread_t");

/* glibc's mapping of pthread error numbers to thrd_* results */
static int thrd_result(int err)
{
	switch (err) {
	case 0:
		return thrd_success;
	case ENOMEM:
		return thrd_nomem;
	case ETIMEDOUT:
		return thrd_timedout;
	case EBUSY:
		return thrd_busy;
	default:
		return thrd_error;
	}
}

struct thrd_start {
	thrd_start_t func;
	void *arg;
};

static void *thrd_trampoline(void *p)
{
	struct thrd_start s = *(struct thrd_start *)p;
	free(p);
	return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
	struct thrd_start *s = malloc(sizeof(*s));
	if (!s)
		return thrd_nomem;
	s->func = func;
	s->arg = arg;
	int err = pthread_create((pthread_t *)thr, NULL, thrd_trampoline, s);
	if (err)
		free(s);
	return thrd_result(err);
}

int thrd_join(thrd_t thr, int *res)
{
	void *ret;
	int err = pthread_join((pthread_t)thr, &ret);
	if (!err && res)
		*res = (int)(intptr_t)ret;
	return thrd_result(err);
}

int mtx_init(mtx_t *m, int type)
{
	pthread_mutexattr_t attr;
	if (pthread_mutexattr_init(&attr))
		return thrd_error;
	if (type & mtx_recursive)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	int err = pthread_mutex_init((pthread_mutex_t *)m, &attr);
	pthread_mutexattr_destroy(&attr);
	return thrd_result(err);
}

int mtx_lock(mtx_t *m)
{
	return thrd_result(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_unlock(mtx_t *m)
{
	return thrd_result(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
	pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
	return thrd_result(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
	return thrd_result(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
	return thrd_result(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
	return thrd_result(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

/* <ts> is absolute TIME_UTC, which is CLOCK_REALTIME, the default clock of
 * a condition variable created by cnd_init above */
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
	return thrd_result(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c)
{
	pthread_cond_destroy((pthread_cond_t *)c);
}

void call_once(once_flag *flag, void (*func)(void))
{
	pthread_once((pthread_once_t *)flag, func);
}

/* gcc says __SANITIZE_THREAD__, clang __has_feature(thread_sanitizer) */
#if defined(__SANITIZE_THREAD__)
#define THREADS_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define THREADS_UNDER_TSAN 1
#endif
#endif

#ifdef THREADS_UNDER_TSAN
/*
 * librdkafka's read-write locks are pthread ones, which TSan intercepts, but
 * tests/tsan.supp makes TSan ignore the calls librdkafka makes itself
 * (called_from_lib), locks included. Called from here instead, they count
 * again. __interceptor_<name> is TSan's own definition of <name>.
 */
int __interceptor_pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *a);
int __interceptor_pthread_rwlock_destroy(pthread_rwlock_t *l);
int __interceptor_pthread_rwlock_rdlock(pthread_rwlock_t *l);
int __interceptor_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __interceptor_pthread_rwlock_unlock(pthread_rwlock_t *l);

int pthread_rwlock_init(pthread_rwlock_t *restrict l, const pthread_rwlockattr_t *restrict a)
{
	return __interceptor_pthread_rwlock_init(l, a);
}

int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
	return __interceptor_pthread_rwlock_destroy(l);
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
	return __interceptor_pthread_rwlock_rdlock(l);
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
	return __interceptor_pthread_rwlock_wrlock(l);
}

int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
	return __interceptor_pthread_rwlock_unlock(l);
}
#endif
