// Syscall load generator for the ring-buffer benchmark and tests: waits for a line on stdin,
// then calls getppid() in a loop for <seconds> at <rate> calls/s (0 = as fast as possible),
// and prints "calls=<n> ns=<elapsed>" on stdout.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	double rate = argc > 2 ? atof(argv[2]) : 0;
	char line[16];
	unsigned long long start, end, calls = 0, t;

	if (!fgets(line, sizeof(line), stdin))
		return 1;
	start = now_ns();
	end = start + (unsigned long long)(seconds * 1e9);
	if (rate <= 0) {
		do {
			for (int i = 0; i < 256; i++)
				syscall(SYS_getppid);
			calls += 256;
		} while (now_ns() < end);
	} else {
		/* paced: catch up to the schedule in small bursts, sleep when ahead */
		double ns_per_call = 1e9 / rate;
		while ((t = now_ns()) < end) {
			unsigned long long due = (unsigned long long)((t - start) / ns_per_call);
			while (calls < due) {
				syscall(SYS_getppid);
				calls++;
			}
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
	t = now_ns();
	printf("calls=%llu ns=%llu\n", calls, t - start);
	return 0;
}
