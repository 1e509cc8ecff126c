/* graft from C: a frozen fmnist_cnn base with a fresh head, fine-tuned on frames generated in
 * memory (uint8 pixels, normalized by graft), the loss printed as it falls; then a mistake
 * on purpose, to show the error a caller gets. */
#include <graft/graft.h>

#include <stdio.h>
#include <stdlib.h>

enum { CLASSES = 3, BATCH = 24, SIDE = 28 };

static unsigned next_random(unsigned* state) {
  *state = *state * 1103515245u + 12345u;
  return (*state >> 16) & 0x7fff;
}

/* Class c: a bright square in one of three corners, on noise. */
static void generate(unsigned* state, uint8_t* images, int32_t* labels) {
  for (int i = 0; i < BATCH; ++i) {
    const int c = (int)(next_random(state) % CLASSES);
    labels[i] = c;
    for (int y = 0; y < SIDE; ++y)
      for (int x = 0; x < SIDE; ++x) {
        const int inside = (c == 0 && x < 10 && y < 10) || (c == 1 && x >= 18 && y < 10) || (c == 2 && y >= 18);
        images[(i * SIDE + y) * SIDE + x] = (uint8_t)((inside ? 180 : 0) + next_random(state) % 60);
      }
  }
}

static int check(graft_model* m, graft_status s, const char* what) {
  if (s == GRAFT_OK) return 0;
  fprintf(stderr, "%s: %s\n", what, graft_model_last_error(m));
  return 1;
}

int main(void) {
  printf("graft %s (C API)\n", graft_version());
  const int64_t input[3] = {SIDE, SIDE, 1};
  graft_model* m = NULL;
  if (graft_model_create("fmnist_cnn", input, CLASSES, "flatten,dense:32,relu,dense:N", 11, GRAFT_DEVICE_CPU, &m) !=
      GRAFT_OK) {
    fprintf(stderr, "create: %s\n", graft_model_last_error(m));
    graft_model_destroy(m);
    return 1;
  }
  int failed = check(m, graft_model_freeze(m, "conv*"), "freeze") ||
               check(m, graft_model_configure(m, BATCH, "adam", 3e-3f, 0.0f, 0.0f), "configure");
  uint64_t peak = 0;
  failed = failed || check(m, graft_model_planned_bytes(m, &peak), "planned_bytes");
  if (!failed) printf("planned memory: %llu bytes\n", (unsigned long long)peak);

  uint8_t* images = malloc((size_t)BATCH * SIDE * SIDE);
  int32_t labels[BATCH];
  const int64_t shape[4] = {BATCH, SIDE, SIDE, 1};
  unsigned state = 5;
  double first = 0, loss = 0;
  for (int step = 1; step <= 40 && !failed && images; ++step) {
    generate(&state, images, labels);
    failed = check(m, graft_model_train_step_u8(m, images, labels, shape, GRAFT_NORMALIZE_UNIT, GRAFT_MEMORY_HOST,
                                                NULL, &loss), "train_step");
    if (step == 1) first = loss;
    if (step == 1 || step % 10 == 0) printf("step %2d  loss %.4f\n", step, loss);
  }
  if (!failed && !(loss < first)) {
    fprintf(stderr, "the loss did not fall (%.4f -> %.4f)\n", first, loss);
    failed = 1;
  }
  /* A wrong shape on purpose: a named error, and the model stays usable. */
  const int64_t wrong[4] = {BATCH, SIDE, SIDE, 3};
  if (!failed && graft_model_train_step_u8(m, images, labels, wrong, GRAFT_NORMALIZE_UNIT, GRAFT_MEMORY_HOST, NULL,
                                           NULL) == GRAFT_ERROR)
    printf("a wrong shape is refused: %s\n", graft_model_last_error(m));
  else if (!failed)
    failed = 1;
  free(images);
  graft_model_destroy(m);
  return failed;
}
