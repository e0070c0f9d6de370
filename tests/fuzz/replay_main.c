/*
 * replay_main.c - runs a fuzz target over saved inputs, without libFuzzer.
 *
 * Linked with each tests/fuzz/fuzz_<name>.c in the ordinary (gcc) build, so
 * ctest replays the corpus on every run and a crash found once stays a
 * regression test. Each argument is a file, or a directory whose files (and
 * the files of its direct subdirectories) are replayed in name order. Names
 * starting with '.' are skipped.
 *
 * Exit status: 0 when every input ran; 1 when a path is missing or a file
 * cannot be read. An empty directory is allowed (a new target may have no
 * corpus yet) but is reported.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* scandir, alphasort (CMake defines it too) */
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Defined by the fuzz target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Replays one file. The buffer is exactly `size` bytes long so that a
 * sanitizer build catches reads past the end of the input. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		fclose(f);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *data = malloc(size > 0 ? size : 1);
	if (data == NULL) {
		fprintf(stderr, "replay: %s: out of memory (%zu bytes)\n", path, size);
		fclose(f);
		return -1;
	}
	if (size > 0 && fread(data, 1, size, f) != size) {
		fprintf(stderr, "replay: %s: short read\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int skip_dot(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/* Replays the regular files in `dir`, and when `depth` > 0 those of its
 * subdirectories too. Adds the number of inputs run to *count. */
static int replay_dir(const char *dir, int depth, size_t *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dot, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		free(names[i]);
		if (rc != 0)
			continue; /* keep freeing the rest */
		if (len < 0 || (size_t)len >= sizeof(path)) {
			fprintf(stderr, "replay: %s/...: path too long\n", dir);
			rc = -1;
			continue;
		}
		struct stat st;
		if (stat(path, &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
			rc = -1;
		} else if (S_ISREG(st.st_mode)) {
			if (replay_file(path) != 0)
				rc = -1;
			else
				(*count)++;
		} else if (S_ISDIR(st.st_mode) && depth > 0) {
			rc = replay_dir(path, depth - 1, count);
		}
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 1;
	}
	size_t total = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		size_t count = 0;
		if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], 1, &count) != 0)
				return 1;
			if (count == 0)
				printf("replay: %s: no inputs (empty corpus)\n", argv[i]);
		} else {
			if (replay_file(argv[i]) != 0)
				return 1;
			count = 1;
		}
		total += count;
	}
	printf("replay: %zu input(s) ran without a crash\n", total);
	return 0;
}
