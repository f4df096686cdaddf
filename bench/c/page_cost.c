/* What a fresh page of a growing, mapped file costs, made in four ways (ns per page).
 *
 *   cc -O2 -o page_cost page_cost.c && ./page_cost DIR
 *
 * A 100 MiB file in DIR is mapped whole while it is empty, then grown page by page; blocks are
 * reserved 64 KiB at a time with fallocate(KEEP_SIZE), as applog does. Each way ends with one
 * store into every new page:
 *   fallocate1+fault            fallocate (mode 0) of the next page, then the store faults it in
 *   16x fallocate1+populate16   16 one-page fallocates, then one MADV_POPULATE_WRITE of the 16
 *   16x fallocate1+read-touch   the same, then one load (a read fault maps up to 16 pages)
 *   ftruncate1+fault            ftruncate to one page more, then the store
 *   16x ftruncate1+populate16   16 one-page ftruncates, then one MADV_POPULATE_WRITE
 * Three rounds of each.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PS 4096L
#define NP 25600L
#define BATCH 16

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  static const char *names[] = {"fallocate1+fault", "16x fallocate1+populate16",
                                "16x fallocate1+read-touch", "ftruncate1+fault",
                                "16x ftruncate1+populate16"};
  char path[4096];
  snprintf(path, sizeof path, "%s/page_cost.dat", argv[1]);
  for (int round = 0; round < 3; round++) {
    for (int mode = 0; mode < 5; mode++) {
      unlink(path);
      int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) {
        perror(path);
        return 1;
      }
      char *map = mmap(NULL, NP * PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
      }
      double t0 = now();
      long reserved = 0;
      for (long g = 0; g < NP;) {
        if ((g + BATCH) * PS > reserved) {
          if (fallocate(fd, FALLOC_FL_KEEP_SIZE, reserved, 64 * 1024)) {
            perror("fallocate");
            return 1;
          }
          reserved += 64 * 1024;
        }
        long n = (mode == 0 || mode == 3) ? 1 : BATCH;
        for (long i = 0; i < n; i++) {
          int r = mode <= 2 ? fallocate(fd, 0, (g + i) * PS, PS) : ftruncate(fd, (g + i + 1) * PS);
          if (r) {
            perror("grow");
            return 1;
          }
        }
        if (mode == 1 || mode == 4) {
          madvise(map + g * PS, n * PS, MADV_POPULATE_WRITE);
        } else if (mode == 2) {
          volatile char c = map[g * PS];
          (void)c;
        }
        for (long i = 0; i < n; i++) {
          map[(g + i) * PS] = 1;
        }
        g += n;
      }
      double t = now() - t0;
      printf("%-28s %5.0f ns/page\n", names[mode], t / NP * 1e9);
      munmap(map, NP * PS);
      close(fd);
      unlink(path);
    }
  }
  return 0;
}
