/* Row orders shared by scorer.c and misread.c: rows sorted by a key of one or more 64-bit words,
   so that rows alike in the key come together (their trees take the same branches). */

#ifndef MUSHROOM_ROW_ORDER_H
#define MUSHROOM_ROW_ORDER_H

#include <stdint.h>
#include <string.h>

/* Row i's key before row k's: the last word first (np.lexsort's order), then the row. */
static inline int key_before(const uint64_t* keys, int words, int64_t i, int64_t k) {
  for (int w = words - 1; w >= 0; --w) {
    const uint64_t x = keys[i * words + w], y = keys[k * words + w];
    if (x != y) return x < y;
  }
  return i < k;
}

/* order = 0..n-1 sorted by key_before: a bottom-up merge sort through scratch (qsort has no
   context argument, and qsort_r differs between platforms). */
static void sort_rows(int64_t* order, int64_t* scratch, int64_t n, const uint64_t* keys,
                      int words) {
  for (int64_t k = 0; k < n; ++k) order[k] = k;
  int64_t* from = order;
  int64_t* to = scratch;
  for (int64_t width = 1; width < n; width *= 2) {
    for (int64_t start = 0; start < n; start += 2 * width) {
      const int64_t middle = start + width < n ? start + width : n;
      const int64_t end = start + 2 * width < n ? start + 2 * width : n;
      int64_t a = start, b = middle, o = start;
      while (a < middle && b < end)
        to[o++] = key_before(keys, words, from[b], from[a]) ? from[b++] : from[a++];
      while (a < middle) to[o++] = from[a++];
      while (b < end) to[o++] = from[b++];
    }
    int64_t* swap = from;
    from = to;
    to = swap;
  }
  if (from != order) memcpy(order, from, (size_t)n * sizeof(int64_t));
}

#endif
