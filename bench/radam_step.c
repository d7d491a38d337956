/*
 * The RAdam step (rectified, adaptive path) in plain C: the practical limit the wasm kernel is
 * measured against by bench/compare.ts. The same f32 operations, in the same order, as
 * assembly/index.ts (compiled with -ffp-contract=off, so no fused multiply-add either).
 *
 * Usage: radam_step N STEPS  ->  prints the mean seconds of one step over STEPS steps (the
 * statistic bench/compare.ts takes for every contender within a sample), then the median.
 * With -fopenmp the loop is split between OMP_NUM_THREADS threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* noipa: the scalars stay run-time values, as in the wasm kernel (gcc would otherwise fold
 * gradScale = 1 and paramDecay = 1 into the loop and skip two multiplies). */
__attribute__((noipa)) static void radam_step(float *restrict p, const float *restrict g, float *restrict m,
                       float *restrict v, long n, float grad_scale, float beta1,
                       float one_minus_beta1, float beta2, float one_minus_beta2,
                       float param_decay, float step_size, float eps) {
#pragma omp parallel for simd schedule(static)
  for (long i = 0; i < n; i++) {
    float gi = grad_scale * g[i];
    float mi = beta1 * m[i] + one_minus_beta1 * gi;
    float vi = beta2 * v[i] + one_minus_beta2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * param_decay - step_size * (mi / (sqrtf(vi) + eps));
  }
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s N STEPS\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
  int steps = atoi(argv[2]);
  float *p = aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
  float *g = aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
  float *m = aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
  float *v = aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
  double *times = malloc(sizeof(double) * steps);
  if (!p || !g || !m || !v || !times) return 1;
  /* First touch in parallel too, so that pages sit near the threads that use them. */
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    p[i] = sinf((float)i);
    g[i] = cosf((float)i) * 1e-2f;
    m[i] = 0;
    v[i] = 0;
  }
  for (int w = 0; w < 3; w++)
    radam_step(p, g, m, v, n, 1.0f, 0.9f, 0.1f, 0.999f, 0.001f, 1.0f, 1e-3f, 1e-8f);
  double start = now();
  for (int s = 0; s < steps; s++) {
    double t0 = now();
    radam_step(p, g, m, v, n, 1.0f, 0.9f, 0.1f, 0.999f, 0.001f, 1.0f, 1e-3f, 1e-8f);
    times[s] = now() - t0;
  }
  double mean = (now() - start) / steps;
  qsort(times, steps, sizeof(double), by_value);
  double check = 0;
  for (long i = 0; i < n; i += 4097) check += p[i];
  printf("%.9e %.9e %g\n", mean, times[steps / 2], check);
  return 0;
}
