/*
 * run_inputs.c
 *	  Runs the fuzz harness's checks (fuzz_model.c) on files, without
 *	  libFuzzer, so a plain build can run under valgrind
 *	  (test/t/016_valgrind.sh).
 *
 *	  run_inputs [-m N] FILE...
 *
 * Each file is one input (a mode byte, then model bytes).  With -m N, each
 * also gives N deterministic variants: a changed byte with the checksums
 * and total size recomputed (mode 3, so the change reaches the structural
 * checks), and a truncation.  Every input is passed in a buffer of exactly
 * its size, so a read past its end is outside the allocation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long n_run = 0;

static void
run(const uint8_t *data, size_t size)
{
	uint8_t    *copy = malloc(size > 0 ? size : 1);

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	LLVMFuzzerTestOneInput(copy, size);
	free(copy);
	n_run++;
}

static uint8_t *
read_file(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf = NULL;
	size_t		cap = 0,
				n = 0,
				got;

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	do
	{
		if (n == cap)
		{
			cap = cap ? 2 * cap : 4096;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*size = n;
	return buf;
}

int
main(int argc, char **argv)
{
	int			variants = 0;
	int			first = 1;

	if (argc > 2 && strcmp(argv[1], "-m") == 0)
	{
		variants = atoi(argv[2]);
		first = 3;
	}
	if (first >= argc)
	{
		fprintf(stderr, "usage: %s [-m N] FILE...\n", argv[0]);
		return 2;
	}
	for (int a = first; a < argc; a++)
	{
		size_t		size;
		uint8_t    *data = read_file(argv[a], &size);

		run(data, size);
		for (int k = 0; k < variants && size > 1; k++)
		{
			uint8_t    *v = malloc(size);
			size_t		pos = 1 + ((size_t) k * 7919) % (size - 1);

			if (v == NULL)
				abort();
			memcpy(v, data, size);
			v[0] = 3;
			v[pos] ^= (uint8_t) (1 + (k * 37) % 255);
			run(v, size);
			run(data, 1 + ((size_t) k * 104729) % (size - 1));
			free(v);
		}
		free(data);
	}
	printf("run_inputs: %ld inputs\n", n_run);
	return 0;
}
