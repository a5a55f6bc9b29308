/* The scorer's native scoring of an encoded batch: the species guard, rows grouped by species,
   the compiled trees, the threshold (lambda_function/compiled.py: NativeScorer).

   It reads numbers only, never bytes from the stream: the matrix that msgspec and the schema
   validator built from validated records (lambda_function/decoding.py), and the bundle's guard
   tables. It gives the same results as ModelBundle.score_codes (lambda_function/model.py),
   which stays the definition: per row, the AND of the guard's species masks of its values (a
   nominal code, or the feature's "missing" row; a numeric value's bin among the feature's
   edges), "unknown" when no species is left, else P(poisonous) >= threshold.

   Safety rules of this file:
   - every value turned into an index is checked first: a nominal code must be NaN (missing) or
     an integer below the feature's vocabulary size, else the batch is refused with the row and
     column (MUSHROOM_BAD_CODE), never read out of bounds; a bin is in [0, edges] by
     construction of the binary search;
   - no global mutable state: the guard is copied into a context at creation, which is never
     changed afterwards; the Python wrapper owns it and frees it when no one can use it;
   - built with hardening flags (training/compile.py), checked below at compile time. */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bisect.h"
#include "row_order.h"

#if !defined(__OPTIMIZE__) || !defined(_FORTIFY_SOURCE) || _FORTIFY_SOURCE < 2
#error "build with -O1 or more and -D_FORTIFY_SOURCE=2 (training/compile.py CFLAGS)"
#endif
#if !defined(__SSP_STRONG__) && !defined(__SSP_ALL__)
#error "build with -fstack-protector-strong (training/compile.py CFLAGS)"
#endif

#define EXPORT __attribute__((visibility("default")))
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define MAX_COLUMNS 1024
#define MAX_WORDS 64 /* 4,096 species */

enum {
  MUSHROOM_OK = 0,
  MUSHROOM_BAD_ARGUMENT = -1,
  MUSHROOM_NO_MEMORY = -2,
  MUSHROOM_PREDICT_FAILED = -3,
  MUSHROOM_BAD_CODE = -4,
};

/* The generated trees' batch entry points (training/compile.py BATCH_SOURCE). */
int32_t mushroom_predict_batch(const double* X, int64_t n_rows, int32_t n_cols, double* out);
int32_t mushroom_predict_batch_leaves(const double* X, int64_t n_rows, int32_t n_cols,
                                      double* out, int32_t* leaves);
int32_t mushroom_num_tree(void);

/* How the library was built, from the compiler's own macros (tests read it). */
EXPORT const char* mushroom_build_flags(void) {
  return "_FORTIFY_SOURCE=" STRINGIFY(_FORTIFY_SOURCE)
#if defined(__SSP_STRONG__)
      " stack-protector-strong"
#elif defined(__SSP_ALL__)
      " stack-protector-all"
#endif
      ;
}

typedef struct {
  int32_t columns, words;
  double threshold;
  int64_t table_rows;
  uint64_t* table;     /* table_rows x words */
  int8_t* nominal;     /* per column */
  int64_t* offset;     /* per column: its first row in table */
  int64_t* size;       /* per column: its rows (nominal: codes + 1, the last for missing) */
  int64_t* edge_count; /* per column: numeric edges (size - 1), 0 for nominal */
  int64_t* edge_start; /* per column: its first edge in edges */
  double* edges;
} Scorer;

EXPORT void mushroom_scorer_free(Scorer* s) {
  if (s == NULL) return;
  free(s->table);
  free(s->nominal);
  free(s->offset);
  free(s->size);
  free(s->edge_count);
  free(s->edge_start);
  free(s->edges);
  free(s);
}

/* A scorer for one bundle's guard and threshold, or NULL (*status says why).
   nominal[j]: 1 nominal, 0 numeric; sizes[j]: column j's rows in table, one after the other
   (numeric: edge_counts[j] + 1 bins); edges: the numeric columns' edges, one after the other,
   ascending; table: table_rows x n_words uint64 species masks. Everything is copied. */
EXPORT Scorer* mushroom_scorer_create(int32_t n_columns, int32_t n_words, const int32_t* nominal,
                                      const int64_t* sizes, const int64_t* edge_counts,
                                      const double* edges, int64_t n_edges,
                                      const uint64_t* table, int64_t table_rows,
                                      double threshold, int32_t* status) {
  *status = MUSHROOM_BAD_ARGUMENT;
  if (n_columns < 1 || n_columns > MAX_COLUMNS || n_words < 1 || n_words > MAX_WORDS ||
      table_rows < 1 || n_edges < 0 || !(threshold >= 0.0 && threshold <= 1.0))
    return NULL;
  if ((uint64_t)table_rows > SIZE_MAX / sizeof(uint64_t) / (uint64_t)n_words ||
      (uint64_t)n_edges > SIZE_MAX / sizeof(double))
    return NULL;
  int64_t rows = 0, edge_total = 0;
  for (int j = 0; j < n_columns; ++j) {
    if (sizes[j] < 1 || sizes[j] > table_rows - rows || edge_counts[j] < 0) return NULL;
    if (nominal[j] ? edge_counts[j] != 0 : edge_counts[j] + 1 != sizes[j]) return NULL;
    rows += sizes[j];
    edge_total += edge_counts[j];
  }
  if (rows != table_rows || edge_total != n_edges) return NULL;
  const double* column_edges = edges;
  for (int j = 0; j < n_columns; ++j) { /* each column's edges ascending, no NaN */
    for (int64_t e = 0; e < edge_counts[j]; ++e)
      if (isnan(column_edges[e]) || (e > 0 && !(column_edges[e - 1] <= column_edges[e])))
        return NULL;
    column_edges += edge_counts[j];
  }

  *status = MUSHROOM_NO_MEMORY;
  Scorer* s = calloc(1, sizeof(Scorer));
  if (s == NULL) return NULL;
  const size_t per_column = (size_t)n_columns;
  s->table = malloc((size_t)table_rows * (size_t)n_words * sizeof(uint64_t));
  s->nominal = malloc(per_column * sizeof(int8_t));
  s->offset = malloc(per_column * sizeof(int64_t));
  s->size = malloc(per_column * sizeof(int64_t));
  s->edge_count = malloc(per_column * sizeof(int64_t));
  s->edge_start = malloc(per_column * sizeof(int64_t));
  s->edges = malloc((size_t)(n_edges > 0 ? n_edges : 1) * sizeof(double));
  if (!s->table || !s->nominal || !s->offset || !s->size || !s->edge_count || !s->edge_start ||
      !s->edges) {
    mushroom_scorer_free(s);
    return NULL;
  }
  memcpy(s->table, table, (size_t)table_rows * (size_t)n_words * sizeof(uint64_t));
  if (n_edges > 0) memcpy(s->edges, edges, (size_t)n_edges * sizeof(double));
  int64_t offset = 0, edge_start = 0;
  for (int j = 0; j < n_columns; ++j) {
    s->nominal[j] = nominal[j] != 0;
    s->offset[j] = offset;
    s->size[j] = sizes[j];
    s->edge_count[j] = edge_counts[j];
    s->edge_start[j] = edge_start;
    offset += sizes[j];
    edge_start += edge_counts[j];
  }
  s->columns = n_columns;
  s->words = n_words;
  s->table_rows = table_rows;
  s->threshold = threshold;
  *status = MUSHROOM_OK;
  return s;
}

/* numpy's searchsorted(edges, x, side="right"): how many edges are <= x, in [0, count]; NaN
   sorts last (count). */
static inline int64_t bin_of(const double* edges, int64_t count, double x) {
  return isnan(x) ? count : count_at_most(edges, count, x);
}

/* Column j's table row for value x, or -1 when x is no code of a nominal column. */
static inline int64_t table_row(const Scorer* s, int j, double x) {
  if (s->nominal[j]) {
    const int64_t missing = s->size[j] - 1;
    if (isnan(x)) return s->offset[j] + missing;
    if (!(x >= 0.0 && x < (double)missing) || x != floor(x)) return -1;
    return s->offset[j] + (int64_t)x;
  }
  const int64_t bin = bin_of(s->edges + s->edge_start[j], s->edge_count[j], x);
  return s->offset[j] + bin; /* bin <= edge_count = size - 1: inside the column's rows */
}

/* mushroom_scorer_score, and with leaves each row's leaf in each tree (n x T, T =
   mushroom_num_tree(): leaves[i * T + t], in the rows' order). */
static int32_t score_rows(const Scorer* s, const double* X, int64_t n, int32_t n_cols,
                          double* p, int8_t* codes, int32_t* leaves, int64_t* bad_row,
                          int32_t* bad_column) {
  if (s == NULL || n < 0 || n_cols != s->columns) return MUSHROOM_BAD_ARGUMENT;
  if (n == 0) return MUSHROOM_OK;
  const int W = s->words, C = s->columns;
  const int64_t T = leaves != NULL ? mushroom_num_tree() : 0;
  const int64_t widest = C > W ? (C > T ? C : T) : (W > T ? W : T);
  if ((uint64_t)n > SIZE_MAX / sizeof(double) / (uint64_t)widest) return MUSHROOM_BAD_ARGUMENT;
  uint64_t* masks = malloc((size_t)n * (size_t)W * sizeof(uint64_t));
  int64_t* order = malloc((size_t)n * sizeof(int64_t));
  int64_t* scratch = malloc((size_t)n * sizeof(int64_t));
  double* grouped = malloc((size_t)n * (size_t)C * sizeof(double));
  double* grouped_p = malloc((size_t)n * sizeof(double));
  int32_t* grouped_leaves = malloc((size_t)(T > 0 ? n * T : 1) * sizeof(int32_t));
  int32_t status = MUSHROOM_NO_MEMORY;
  if (masks && order && scratch && grouped && grouped_p && grouped_leaves) {
    status = MUSHROOM_OK;
    for (int64_t i = 0; i < n && status == MUSHROOM_OK; ++i) {
      const double* x = X + i * C;
      uint64_t* m = masks + i * W;
      for (int w = 0; w < W; ++w) m[w] = ~0ULL;
      for (int j = 0; j < C; ++j) {
        const int64_t row = table_row(s, j, x[j]);
        if (row < 0) {
          *bad_row = i;
          *bad_column = j;
          status = MUSHROOM_BAD_CODE;
          break;
        }
        const uint64_t* t = s->table + row * W;
        for (int w = 0; w < W; ++w) m[w] &= t[w];
      }
    }
  }
  if (status == MUSHROOM_OK) {
    /* Rows in the order of their species masks, the last word first, as np.lexsort orders
       them: rows of one mask together (their trees take the same branches). */
    sort_rows(order, scratch, n, masks, W);
    for (int64_t k = 0; k < n; ++k)
      memcpy(grouped + k * C, X + order[k] * C, (size_t)C * sizeof(double));
    const int32_t predicted =
        leaves != NULL ? mushroom_predict_batch_leaves(grouped, n, C, grouped_p, grouped_leaves)
                       : mushroom_predict_batch(grouped, n, C, grouped_p);
    status = predicted == 0 ? MUSHROOM_OK : MUSHROOM_PREDICT_FAILED;
  }
  if (status == MUSHROOM_OK) {
    for (int64_t k = 0; k < n; ++k) p[order[k]] = grouped_p[k];
    if (leaves != NULL)
      for (int64_t k = 0; k < n; ++k)
        memcpy(leaves + order[k] * T, grouped_leaves + k * T, (size_t)T * sizeof(int32_t));
    for (int64_t i = 0; i < n; ++i) {
      uint64_t any = 0;
      for (int w = 0; w < W; ++w) any |= masks[i * W + w];
      codes[i] = any ? (int8_t)(p[i] >= s->threshold) : 2;
    }
  }
  free(masks);
  free(order);
  free(scratch);
  free(grouped);
  free(grouped_p);
  free(grouped_leaves);
  return status;
}

/* P(poisonous) and verdict codes (0 edible, 1 poisonous, 2 unknown) of the n rows of X (C
   order, n_cols == the scorer's columns). Returns MUSHROOM_OK, or an error; on
   MUSHROOM_BAD_CODE, *bad_row and *bad_column name the first value that is no code. Only the
   caller's arrays and this call's own buffers are written: calls may run concurrently. */
EXPORT int32_t mushroom_scorer_score(const Scorer* s, const double* X, int64_t n, int32_t n_cols,
                                     double* p, int8_t* codes, int64_t* bad_row,
                                     int32_t* bad_column) {
  return score_rows(s, X, n, n_cols, p, codes, NULL, bad_row, bad_column);
}

/* mushroom_scorer_score, and each row's leaf in each tree into leaves (n x
   mushroom_num_tree(), row-major), as the trees' code records them: the misread check reads
   them instead of walking the trees again (misread.c mushroom_misread_check_leaves). */
EXPORT int32_t mushroom_scorer_score_leaves(const Scorer* s, const double* X, int64_t n,
                                            int32_t n_cols, double* p, int8_t* codes,
                                            int32_t* leaves, int64_t* bad_row,
                                            int32_t* bad_column) {
  if (leaves == NULL) return MUSHROOM_BAD_ARGUMENT;
  return score_rows(s, X, n, n_cols, p, codes, leaves, bad_row, bad_column);
}
