/* The misread check, natively (lambda_function/misread.py describes what it decides).
 *
 * Works only on validated numbers: the encoded feature matrix, the verdict codes, and the
 * trees, guard and cut points that misread.py takes from the bundle's verified files. Every
 * array comes with its length, every value used as an index is checked against it, and the
 * model is checked whole at each call (a few thousand comparisons): a bad index is an error
 * (-1), never a read out of bounds. The layout's indices are made here from that checked model,
 * and a layout is used only when its counts and hashes match the model and its bytes. No
 * global state: the caller owns every buffer but the scratch memory, which one call allocates
 * and frees.
 *
 * The rows' own leaves come first: read from the compiled trees, which record them while
 * they score the rows (mushroom_misread_check_leaves: each one checked to be a leaf of its
 * tree), or found here, tree by tree for a block of rows in lockstep. A leaf names its path,
 * laid out with, per feature, its first split on it, the chain of its further splits on it,
 * and the most a variant in that feature alone can add in that tree (the largest leaf below
 * the other child of any of those splits). The layout is made once per bundle load into a
 * buffer the caller keeps (mushroom_misread_layout), checked at each call
 * (mushroom_misread_check_laid_out, mushroom_misread_check_leaves); mushroom_misread_check
 * makes it for the one call. For an edible row and one attribute a, only the trees whose path
 * for the row meets a split on a can change their leaf, from the first such split down. The
 * sum of those per-leaf figures dismisses many attributes, the guard more, and a bound along
 * the paths restricted to the codes or values the guard knows (variant_bound) most of the
 * rest; the others' trees are walked once from that split for all variants of a at once: a
 * set of codes (a bitmask) for a nominal attribute, a range of the interval's sorted points
 * for a measurement, split at a's nodes.
 * raw(variant) = raw(row) + sum over those trees of (leaf(variant) - leaf(row)).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bisect.h"
#include "row_order.h"

#define EXPORT __attribute__((visibility("default")))
#define MISREAD_ABI 1
#define MAX_CODES 64
#define ZERO_THRESHOLD 1e-35
/* Summation order differs from LightGBM's: a variant within this of the cut blocks. */
#define RAW_EPSILON 1e-9
/* Rows whose leaves are found together, tree by tree (their paths interleave in the CPU). */
#define BLOCK 64
/* Buffers of one call, freed together. */
#define MAX_BUFFERS 48

typedef struct {
    /* trees: child >= 0 is a node, child < 0 the leaf -child - 1 */
    int32_t n_features, n_trees, n_nodes, n_leaves;
    int64_t n_cat_bits;
    const int32_t *roots, *feature, *left, *right, *cat_start, *cat_words;
    const double *threshold, *leaf_value;
    const uint8_t *decision_type;
    const uint32_t *cat_bits;
    const uint64_t *left_codes; /* per node: the codes 0..63 that go left */
    const double *node_max;     /* per node: the largest leaf value below it */
    /* features: n_codes > 0 nominal (codes 0..n_codes-1), 0 numeric */
    const int32_t *n_codes;
    /* guard: per feature, rows [guard_offset, guard_offset + guard_rows) of the mask table */
    int32_t n_words;
    int64_t table_rows, n_edges, n_cuts;
    const int64_t *guard_offset, *guard_rows, *edge_offset, *edge_count;
    const uint64_t *table;
    const double *edges;
    /* per numeric feature: its sorted cut points */
    const int64_t *cut_offset, *cut_count;
    const double *cuts;
    int32_t n_intervals;
    const double *factors; /* (low, high) factor of the value, per interval */
    double raw_cut;
} MisreadModel;

EXPORT int32_t mushroom_misread_abi(void) { return MISREAD_ABI; }

static int valid_child(const MisreadModel *m, int32_t c) {
    return c >= 0 ? c < m->n_nodes : -(int64_t)c - 1 < m->n_leaves;
}

static int valid_range(int64_t offset, int64_t count, int64_t total) {
    return offset >= 0 && count >= 0 && offset <= total && count <= total - offset;
}

static int validate(const MisreadModel *m) {
    if (m->n_features <= 0 || m->n_trees <= 0 || m->n_nodes < 0 || m->n_leaves <= 0 ||
        m->n_words <= 0 || m->n_intervals < 0 || m->n_cat_bits < 0)
        return 0;
    for (int32_t t = 0; t < m->n_trees; ++t)
        if (!valid_child(m, m->roots[t])) return 0;
    for (int32_t k = 0; k < m->n_nodes; ++k) {
        if (m->feature[k] < 0 || m->feature[k] >= m->n_features) return 0;
        if (!valid_child(m, m->left[k]) || !valid_child(m, m->right[k])) return 0;
        if ((m->decision_type[k] & 1) &&
            !valid_range(m->cat_start[k], m->cat_words[k], m->n_cat_bits))
            return 0;
    }
    for (int32_t f = 0; f < m->n_features; ++f) {
        int64_t rows = m->guard_rows[f];
        if (!valid_range(m->guard_offset[f], rows, m->table_rows)) return 0;
        if (m->n_codes[f] > 0) {
            if (m->n_codes[f] > MAX_CODES || rows != (int64_t)m->n_codes[f] + 1) return 0;
        } else {
            if (m->n_codes[f] < 0) return 0;
            if (!valid_range(m->edge_offset[f], m->edge_count[f], m->n_edges)) return 0;
            if (rows != m->edge_count[f] + 1) return 0;
            if (!valid_range(m->cut_offset[f], m->cut_count[f], m->n_cuts)) return 0;
        }
    }
    return 1;
}

/* LightGBM's decision (tree.h): 1 when x goes left at node k. */
static inline __attribute__((always_inline)) int goes_left(const MisreadModel *m, int32_t k, double x) {
    uint8_t dt = m->decision_type[k];
    if (dt & 1) {
        if (isnan(x) || x <= -1.0 || x >= 2147483648.0) return 0;
        int64_t code = (int64_t)x; /* truncation, as static_cast<int> */
        int64_t word = code / 32;
        if (word >= m->cat_words[k]) return 0;
        return (int)((m->cat_bits[m->cat_start[k] + word] >> (code % 32)) & 1u);
    }
    int missing = (dt >> 2) & 3;
    if (isnan(x) && missing != 2) x = 0.0;
    if ((missing == 1 && x >= -ZERO_THRESHOLD && x <= ZERO_THRESHOLD) ||
        (missing == 2 && isnan(x)))
        return (dt & 2) != 0;
    return x <= m->threshold[k];
}

/* A node as the rows' own paths read it, in one place (the arrays of MisreadModel spread it
 * over seven). `test` is the threshold of a numeric split, or the codes 0..63 that go left at
 * a categorical split on a nominal attribute. Nodes n_nodes.. are the leaves, each its own
 * child, so that every path of a tree is as long as its longest. */
typedef struct {
    union {
        double threshold;
        uint64_t codes;
    } test;
    int32_t feature;
    int32_t child[2]; /* right, left */
    uint8_t categorical; /* 1: test.codes, 0: test.threshold */
    uint8_t nan_left;    /* where NaN goes */
    uint8_t general;     /* 1: always by goes_left (a zero test, or no left_codes) */
} PathNode;

/* Scratch memory of one call. */
typedef struct {
    PathNode *nodes;   /* n_nodes + n_leaves */
    int32_t *root;     /* per tree: its root among nodes */
    int32_t *depth;    /* per tree: its longest path's splits */
    /* The path of each leaf l: steps [leaf_start[l], leaf_start[l] + leaf_steps[l]); step k
     * visits node step_node[k] and goes left when step_left[k]. */
    int64_t *leaf_start;
    int32_t *leaf_steps, *step_node;
    uint8_t *step_left;
    int32_t *leaf_tree; /* per leaf: its tree (-1: no tree reaches it) */
    /* Per step: the next step of the same path on the same feature, or -1. */
    int32_t *next_same;
    /* Per step: the largest leaf value below the other child of its node (where a variant
     * that leaves the path there can end). */
    double *step_most;
    /* Per leaf l and feature f (l * n_features + f): the first step of l's path splitting on f
     * (-1: none), and what the first bound adds for that tree: the largest leaf below that
     * step's node less l's value (0 when f is not on the path). */
    int32_t *first_step;
    double *gain;
    /* A block of rows: their leaves (row-major, n_trees each) and, per row and feature, the
     * value's code as a shift (0..63, else 0), 1 when NaN, and 1 when a categorical split must
     * decide it by goes_left (not NaN, no code below 64). */
    int32_t *block_leaf, *shift;
    uint8_t *is_nan, *odd_code;
    double *base_leaf;  /* per tree: the row's leaf value */
    double *bound;      /* per feature: the row's first bound */
    /* The trees whose path for the row splits on the attribute checked, with their first
     * step splitting on it (n_trees at most). */
    int32_t *start_tree, *start_step;
    uint64_t *prefix;   /* (n_features + 1) x words: AND of the masks of features < f */
    uint64_t *suffix;   /* (n_features + 1) x words: AND of the masks of features >= f */
    uint64_t *other;    /* words */
    int64_t *mask_row;  /* per feature: the row's guard table row */
    int32_t *stack_node;
    int64_t *stack_a, *stack_b;
    int64_t stack_size;
    double *points, *diff, *ends;
    uint8_t *known; /* per point: the guard knows it */
    int64_t max_points;
    int64_t n_steps; /* of all leaves' paths */
} Scratch;

static inline int push(Scratch *s, int64_t *top, int32_t node, int64_t a, int64_t b) {
    if (*top >= s->stack_size) return 0;
    s->stack_node[*top] = node;
    s->stack_a[*top] = a;
    s->stack_b[*top] = b;
    ++*top;
    return 1;
}

static inline int any_word(const uint64_t *a, const uint64_t *b, int32_t n) {
    for (int32_t w = 0; w < n; ++w)
        if (a[w] & b[w]) return 1;
    return 0;
}

/* The distinct outcomes' values of [low, high] (misread.interval_points); their count. */
static int64_t interval_points(const double *cuts, int64_t n_cuts, double low, double high,
                               Scratch *s) {
    if (low > high) {
        double t = low;
        low = high;
        high = t;
    }
    int64_t n_ends = 0;
    s->ends[n_ends++] = low;
    const int64_t first = count_below(cuts, n_cuts, low); /* the first cut >= low */
    for (int64_t c = first; c < n_cuts && cuts[c] <= high; ++c)
        if (cuts[c] > s->ends[n_ends - 1]) s->ends[n_ends++] = cuts[c];
    if (high > s->ends[n_ends - 1]) s->ends[n_ends++] = high;
    int64_t n = 0;
    for (int64_t e = 0; e < n_ends; ++e) {
        s->points[n++] = s->ends[e];
        if (e + 1 < n_ends) {
            double middle = (s->ends[e] + s->ends[e + 1]) / 2.0;
            if (middle > s->ends[e] && middle < s->ends[e + 1]) s->points[n++] = middle;
        }
    }
    return n;
}

/* An upper bound of the raw score of the row's variants in attribute a: those with a code in
 * `codes` (a nominal attribute), or a value in [low, high] (a measurement). In each tree whose
 * path for the row splits on a, a variant follows the row's path down to the first node on a where it
 * leaves it, and then stays below that node's other child, whose largest leaf bounds it; or it
 * never leaves the path and ends in the row's leaf. A node where no variant still on the path
 * can leave it adds nothing, which is what makes this bound far tighter than the largest leaf
 * below the first split on a. */
static double variant_bound(const MisreadModel *m, const Scratch *s, int32_t a, int64_t n_on,
                            double raw, uint64_t codes, double low, double high) {
    const int nominal = m->n_codes[a] > 0;
    double bound = raw;
    for (int64_t e = 0; e < n_on; ++e) { /* the trees whose path for the row splits on a */
        const int32_t t = s->start_tree[e], first = s->start_step[e];
        const double base = s->base_leaf[t];
        double best = base;
        uint64_t set = codes;
        double l = low, h = high;
        for (int32_t k = first; k >= 0; k = s->next_same[k]) { /* a's splits */
            const int32_t node = s->step_node[k];
            const int left = s->step_left[k];
            const PathNode *n = &s->nodes[node];
            int leaves = 1; /* any rule but these two: assume some variant leaves the path */
            if (nominal) {
                uint64_t away = set & (left ? ~m->left_codes[node] : m->left_codes[node]);
                leaves = away != 0;
                set &= ~away;
            } else if (!n->categorical && !n->general) { /* x <= threshold goes left */
                const double th = n->test.threshold;
                if (left) {
                    leaves = h > th;
                    if (h > th) h = th;
                } else {
                    leaves = l <= th;
                    if (l < th) l = th; /* (th, h], kept closed: a looser bound, never tighter */
                }
            }
            const double most = leaves ? s->step_most[k] : best;
            if (most > best) best = most;
            if (nominal ? set == 0 : l > h) break;
        }
        bound += best - base;
    }
    return bound;
}

/* The guard for row x: each feature's mask row, and ANDs of all features but one (prefix and
 * suffix), so that a variant's species are one attribute's mask AND the others'. */
static void guard_masks(const MisreadModel *m, const double *x, Scratch *s) {
    const int32_t nf = m->n_features, nw = m->n_words;
    for (int32_t f = 0; f < nf; ++f) {
        int64_t bin;
        if (m->n_codes[f] > 0) {
            double v = x[f];
            bin = (isnan(v) || v < 0 || v >= m->n_codes[f]) ? m->n_codes[f] : (int64_t)v;
        } else {
            const double *e = m->edges + m->edge_offset[f];
            const int64_t count = m->edge_count[f];
            bin = isnan(x[f]) ? count : count_at_most(e, count, x[f]); /* edges <= x */
        }
        s->mask_row[f] = m->guard_offset[f] + bin;
    }
    for (int32_t w = 0; w < nw; ++w) {
        s->prefix[w] = ~(uint64_t)0;
        s->suffix[(int64_t)nf * nw + w] = ~(uint64_t)0;
    }
    for (int32_t f = 0; f < nf; ++f)
        for (int32_t w = 0; w < nw; ++w)
            s->prefix[(int64_t)(f + 1) * nw + w] =
                s->prefix[(int64_t)f * nw + w] & m->table[s->mask_row[f] * nw + w];
    for (int32_t f = nf - 1; f >= 0; --f)
        for (int32_t w = 0; w < nw; ++w)
            s->suffix[(int64_t)f * nw + w] =
                s->suffix[(int64_t)(f + 1) * nw + w] & m->table[s->mask_row[f] * nw + w];
}

/* The trees whose path for the row (its leaves' first_step) splits on a, into start_tree,
 * with the first such step in start_step; their number. */
static int64_t trees_on(const MisreadModel *m, Scratch *s, const int32_t *leaf, int32_t a) {
    const int64_t nf = m->n_features;
    int64_t n = 0;
    for (int32_t t = 0; t < m->n_trees; ++t) { /* no branch: which trees do is unpredictable */
        const int32_t step = s->first_step[(int64_t)leaf[t] * nf + a];
        s->start_tree[n] = t;
        s->start_step[n] = step;
        n += step >= 0;
    }
    return n;
}

/* Checks one edible row, whose leaf in tree t is leaf[t]; 1 blocked (feature and value set),
 * 0 not, -1 error. */
static int check_row(const MisreadModel *m, const double *x, const int32_t *leaf, Scratch *s,
                     int32_t *out_feature, double *out_value) {
    const int32_t nf = m->n_features, nt = m->n_trees, nw = m->n_words;
    double raw = 0.0;
    for (int32_t t = 0; t < nt; ++t) {
        s->base_leaf[t] = m->leaf_value[leaf[t]];
        raw += s->base_leaf[t];
    }
    /* The first bound of every attribute at once: raw plus, tree by tree, the largest leaf
     * below the first split on it less the row's leaf. */
    for (int32_t f0 = 0; f0 < nf; f0 += 8) { /* 8 features at a time, their sums in registers */
        double sum[8] = {raw, raw, raw, raw, raw, raw, raw, raw};
        const double *gain = s->gain + f0;
        if (nf - f0 >= 8) {
            for (int32_t t = 0; t < nt; ++t)
                for (int k = 0; k < 8; ++k) sum[k] += gain[(int64_t)leaf[t] * nf + k];
            for (int k = 0; k < 8; ++k) s->bound[f0 + k] = sum[k];
        } else {
            const int width = nf - f0;
            for (int32_t t = 0; t < nt; ++t)
                for (int k = 0; k < width; ++k) sum[k] += gain[(int64_t)leaf[t] * nf + k];
            for (int k = 0; k < width; ++k) s->bound[f0 + k] = sum[k];
        }
    }
    int guard_ready = 0;
    const double cut = m->raw_cut - RAW_EPSILON;

    for (int32_t a = 0; a < nf; ++a) {
        double xa = x[a];
        if (isnan(xa)) continue; /* not observed: stays so */
        /* No variant of a can score above raw + the sum of its trees' largest possible
         * change: when that stays below the cut, a cannot block. */
        if (s->bound[a] < cut - RAW_EPSILON) continue;
        /* The trees whose path for the row splits on a: entries [e0, e1), found once the
         * guard leaves some variant of a (-1: not yet). */
        const int64_t e0 = 0;
        int64_t e1 = -1;
        if (!guard_ready) {
            guard_masks(m, x, s);
            guard_ready = 1;
        }
        for (int32_t w = 0; w < nw; ++w)
            s->other[w] = s->prefix[(int64_t)a * nw + w] & s->suffix[(int64_t)(a + 1) * nw + w];
        const uint64_t *masks = m->table + m->guard_offset[a] * nw;
        if (m->n_codes[a] > 0) {
            int32_t n_codes = m->n_codes[a];
            double delta[MAX_CODES];
            uint64_t all = n_codes == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n_codes) - 1);
            if (xa >= 0 && xa < n_codes && xa == floor(xa))
                all &= ~((uint64_t)1 << (int64_t)xa);
            /* A code the guard calls unknown cannot block: only the others are walked. */
            for (int32_t c = 0; c < n_codes; ++c)
                if (((all >> c) & 1) && !any_word(s->other, masks + (int64_t)c * nw, nw))
                    all &= ~((uint64_t)1 << c);
            if (!all) continue;
            e1 = trees_on(m, s, leaf, a);
            if (e1 == 0) continue; /* no tree reads a on this row's paths: nothing can change */
            if (variant_bound(m, s, a, e1, raw, all, 0.0, 0.0) < cut - RAW_EPSILON) continue;
            for (int32_t c = 0; c < n_codes; ++c) delta[c] = 0.0;
            for (int64_t e = e0; e < e1; ++e) {
                const int32_t t = s->start_tree[e];
                int64_t top = 0, pops = 0;
                if (!push(s, &top, s->step_node[s->start_step[e]], (int64_t)all, 0)) return -1;
                while (top > 0) {
                    if (++pops > s->stack_size) return -1;
                    --top;
                    int32_t node = s->stack_node[top];
                    uint64_t set = (uint64_t)s->stack_a[top];
                    if (node < 0) {
                        double d = m->leaf_value[-(int64_t)node - 1] - s->base_leaf[t];
                        for (; set; set &= set - 1) delta[__builtin_ctzll(set)] += d;
                    } else if (m->feature[node] == a) {
                        uint64_t l = set & m->left_codes[node], r = set & ~m->left_codes[node];
                        if (l && !push(s, &top, m->left[node], (int64_t)l, 0)) return -1;
                        if (r && !push(s, &top, m->right[node], (int64_t)r, 0)) return -1;
                    } else {
                        int32_t next = goes_left(m, node, x[m->feature[node]]) ? m->left[node]
                                                                               : m->right[node];
                        if (!push(s, &top, next, (int64_t)set, 0)) return -1;
                    }
                }
            }
            for (int32_t c = 0; c < n_codes; ++c) {
                if (!((all >> c) & 1)) continue;
                if (raw + delta[c] >= cut) {
                    *out_feature = a;
                    *out_value = (double)c;
                    return 1;
                }
            }
            continue;
        }
        const double *cuts = m->cuts + m->cut_offset[a];
        const double *edges = m->edges + m->edge_offset[a];
        const int64_t n_edges = m->edge_count[a];
        for (int32_t k = 0; k < m->n_intervals; ++k) {
            double low = xa * m->factors[2 * k], high = xa * m->factors[2 * k + 1];
            if (low > high) { /* a negative value's factors swap them */
                double swap = low;
                low = high;
                high = swap;
            }
            /* The guard's bins of [low, high] (bin b: b edges <= the value); the first and the
             * last it knows bound the values that can block. */
            const int64_t bin_low = count_at_most(edges, n_edges, low); /* edges <= low */
            int64_t bin_high = bin_low, known_low, known_high;
            while (bin_high < n_edges && edges[bin_high] <= high) ++bin_high;
            for (known_low = bin_low; known_low <= bin_high; ++known_low)
                if (any_word(s->other, masks + known_low * nw, nw)) break;
            if (known_low > bin_high) continue; /* the guard knows none of them */
            for (known_high = bin_high; known_high > known_low; --known_high)
                if (any_word(s->other, masks + known_high * nw, nw)) break;
            double value_low = known_low == bin_low ? low : edges[known_low - 1];
            double value_high = known_high == bin_high ? high : edges[known_high];
            if (e1 < 0) e1 = trees_on(m, s, leaf, a);
            if (e1 == 0) break; /* no tree reads a on this row's paths: nothing can change */
            if (variant_bound(m, s, a, e1, raw, 0, value_low, value_high) < cut - RAW_EPSILON)
                continue;
            int64_t n = interval_points(cuts, m->cut_count[a], low, high, s);
            /* The guard first: points it calls unknown cannot block; only the range from
             * the first to the last other point is walked. */
            int64_t first_ok = -1, last_ok = -1;
            /* The first point's bin by bisection (edges <= it): a linear scan from the lowest
             * edge cost the most here (two edges per species; x10 lies past most of them). */
            int64_t bin = count_at_most(edges, n_edges, s->points[0]);
            for (int64_t p = 0; p < n; ++p) {
                while (bin < n_edges && edges[bin] <= s->points[p]) ++bin;
                s->known[p] = (uint8_t)any_word(s->other, masks + bin * nw, nw);
                if (s->known[p]) {
                    if (first_ok < 0) first_ok = p;
                    last_ok = p;
                }
            }
            if (first_ok < 0) continue;
            for (int64_t p = 0; p <= n; ++p) s->diff[p] = 0.0;
            for (int64_t e = e0; e < e1; ++e) {
                const int32_t t = s->start_tree[e];
                int64_t top = 0, pops = 0;
                if (!push(s, &top, s->step_node[s->start_step[e]], first_ok, last_ok)) return -1;
                while (top > 0) {
                    if (++pops > s->stack_size) return -1;
                    --top;
                    int32_t node = s->stack_node[top];
                    int64_t lo = s->stack_a[top], hi = s->stack_b[top];
                    if (node < 0) {
                        double d = m->leaf_value[-(int64_t)node - 1] - s->base_leaf[t];
                        s->diff[lo] += d;
                        s->diff[hi + 1] -= d;
                    } else if (m->feature[node] == a) {
                        uint8_t dt = m->decision_type[node];
                        if (!(dt & 1) && ((dt >> 2) & 3) != 1) {
                            /* x <= threshold goes left (points are never NaN): a prefix */
                            int64_t l = lo, h = hi + 1;
                            while (l < h) {
                                int64_t mid = l + (h - l) / 2;
                                if (s->points[mid] <= m->threshold[node]) l = mid + 1; else h = mid;
                            }
                            if (l > lo && !push(s, &top, m->left[node], lo, l - 1)) return -1;
                            if (l <= hi && !push(s, &top, m->right[node], l, hi)) return -1;
                        } else { /* any other rule: runs of points going the same way */
                            int64_t run = lo;
                            int side = goes_left(m, node, s->points[lo]);
                            for (int64_t p = lo + 1; p <= hi + 1; ++p) {
                                int next = p <= hi ? goes_left(m, node, s->points[p]) : !side;
                                if (next != side) {
                                    int32_t child = side ? m->left[node] : m->right[node];
                                    if (!push(s, &top, child, run, p - 1)) return -1;
                                    run = p;
                                    side = next;
                                }
                            }
                        }
                    } else {
                        int32_t next = goes_left(m, node, x[m->feature[node]]) ? m->left[node]
                                                                               : m->right[node];
                        if (!push(s, &top, next, lo, hi)) return -1;
                    }
                }
            }
            double delta = 0.0;
            for (int64_t p = 0; p <= last_ok; ++p) {
                delta += s->diff[p];
                if (!s->known[p]) continue;
                if (raw + delta >= cut) {
                    *out_feature = a;
                    *out_value = s->points[p];
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* Buffers of one call: each from take(), all freed by release(). */
typedef struct {
    void *buffer[MAX_BUFFERS];
    int count, failed;
} Buffers;

static void *take(Buffers *b, int64_t size) {
    void *p = (b->count < MAX_BUFFERS && size >= 0) ? malloc(size > 0 ? (size_t)size : 1) : NULL;
    if (p == NULL) {
        b->failed = 1;
        return NULL;
    }
    b->buffer[b->count++] = p;
    return p;
}

static void release(Buffers *b) {
    for (int i = 0; i < b->count; ++i) free(b->buffer[i]);
    b->count = 0;
}

/* The nodes as the paths read them (leaves after the splits), each tree's root and longest
 * path, and each leaf's path with its first split on each feature. 0 when the trees are no
 * forest (a node reached twice), -1 when memory runs out, 1 done. */
static int lay_out_paths(const MisreadModel *m, Scratch *s, Buffers *b) {
    const int32_t n_nodes = m->n_nodes, n_leaves = m->n_leaves, nt = m->n_trees;
    const int64_t n_all = (int64_t)n_nodes + n_leaves;
    int32_t *parent = take(b, sizeof(int32_t) * n_all);
    int32_t *level = take(b, sizeof(int32_t) * n_all);
    int32_t *todo = take(b, sizeof(int32_t) * n_all);
    uint8_t *seen = take(b, n_all);
    s->nodes = take(b, sizeof(PathNode) * n_all);
    s->root = take(b, sizeof(int32_t) * nt);
    s->depth = take(b, sizeof(int32_t) * nt);
    s->leaf_start = take(b, sizeof(int64_t) * n_leaves);
    s->leaf_steps = take(b, sizeof(int32_t) * n_leaves);
    s->leaf_tree = take(b, sizeof(int32_t) * n_leaves);
    if (b->failed) return -1;
    memset(s->nodes, 0, sizeof(PathNode) * n_all); /* padding too: a layout is hashed */
    for (int32_t k = 0; k < n_nodes; ++k) {
        PathNode *n = &s->nodes[k];
        const uint8_t dt = m->decision_type[k];
        n->feature = m->feature[k];
        /* a leaf -c - 1 is node n_nodes - c - 1 */
        n->child[0] = m->right[k] >= 0 ? m->right[k] : n_nodes - m->right[k] - 1;
        n->child[1] = m->left[k] >= 0 ? m->left[k] : n_nodes - m->left[k] - 1;
        n->categorical = (uint8_t)(dt & 1);
        if (n->categorical) {
            n->test.codes = m->left_codes[k];
            n->nan_left = 0;
            n->general = (uint8_t)(m->n_codes[n->feature] == 0); /* no left_codes */
        } else {
            n->test.threshold = m->threshold[k];
            n->nan_left = (uint8_t)goes_left(m, k, NAN);
            n->general = (uint8_t)(((dt >> 2) & 3) == 1); /* |x| <= 1e-35 goes the default way */
        }
    }
    for (int32_t l = 0; l < n_leaves; ++l) {
        PathNode *n = &s->nodes[n_nodes + l];
        memset(n, 0, sizeof(*n)); /* feature 0, "x <= 0": any decision stays here */
        n->child[0] = n->child[1] = n_nodes + l;
        s->leaf_steps[l] = 0;
        s->leaf_tree[l] = -1;
    }
    memset(seen, 0, (size_t)n_all);
    /* Every tree from its root, depth first: a node reached twice makes no forest. */
    int64_t n_steps = 0;
    for (int32_t t = 0; t < nt; ++t) {
        const int32_t root = m->roots[t] >= 0 ? m->roots[t] : n_nodes - m->roots[t] - 1;
        if (seen[root]) return 0;
        seen[root] = 1;
        s->root[t] = root;
        s->depth[t] = 0;
        parent[root] = -1;
        level[root] = 0;
        int64_t top = 0;
        todo[top++] = root;
        while (top > 0) {
            const int32_t k = todo[--top];
            if (k >= n_nodes) { /* a leaf */
                s->leaf_steps[k - n_nodes] = level[k];
                s->leaf_tree[k - n_nodes] = t;
                n_steps += level[k];
                if (level[k] > s->depth[t]) s->depth[t] = level[k];
                continue;
            }
            for (int side = 0; side < 2; ++side) {
                const int32_t c = s->nodes[k].child[side];
                if (seen[c]) return 0;
                seen[c] = 1;
                parent[c] = k;
                level[c] = level[k] + 1;
                todo[top++] = c; /* each node once: top < n_all */
            }
        }
    }
    if (n_steps > INT32_MAX) return -1; /* steps are numbered by int32_t */
    s->n_steps = n_steps;
    s->step_node = take(b, sizeof(int32_t) * n_steps);
    s->step_left = take(b, n_steps);
    s->next_same = take(b, sizeof(int32_t) * n_steps);
    s->step_most = take(b, sizeof(double) * n_steps);
    const int64_t nf = m->n_features;
    s->first_step = take(b, sizeof(int32_t) * n_leaves * nf);
    s->gain = take(b, sizeof(double) * n_leaves * nf);
    if (b->failed) return -1;
    int64_t at = 0;
    for (int32_t l = 0; l < n_leaves; ++l) {
        const int32_t steps = s->leaf_steps[l];
        s->leaf_start[l] = at;
        int32_t k = n_nodes + l;
        for (int32_t i = steps - 1; i >= 0; --i) { /* up to the root */
            const int32_t p = parent[k];
            s->step_node[at + i] = p;
            s->step_left[at + i] = (uint8_t)(s->nodes[p].child[1] == k);
            const int32_t other = s->step_left[at + i] ? m->right[p] : m->left[p];
            s->step_most[at + i] =
                other < 0 ? m->leaf_value[-(int64_t)other - 1] : m->node_max[other];
            k = p;
        }
        int32_t *first = s->first_step + (int64_t)l * nf;
        double *gain = s->gain + (int64_t)l * nf;
        for (int64_t f = 0; f < nf; ++f) {
            first[f] = -1;
            gain[f] = 0.0;
        }
        for (int32_t i = steps - 1; i >= 0; --i) { /* from the leaf up: the next same split */
            const int32_t f = s->nodes[s->step_node[at + i]].feature;
            s->next_same[at + i] = first[f];
            first[f] = (int32_t)(at + i);
        }
        /* A variant in f alone follows the path but where it leaves it at a split on f, and
         * then ends below that split's other child: the most it can add in this tree. */
        for (int64_t f = 0; f < nf; ++f) {
            double best = m->leaf_value[l];
            for (int32_t k = first[f]; k >= 0; k = s->next_same[k])
                if (s->step_most[k] > best) best = s->step_most[k];
            gain[f] = best - m->leaf_value[l];
        }
        at += steps;
    }
    return 1;
}

/* The leaves of the block's rows (`rows` of them, at matrix row `index[r]`) in every tree, into
 * s->block_leaf. Branch-free but for the rare general case: the decisions are those of
 * goes_left (a split's codes 0..63 are its category set's bits; NaN goes where the node sends
 * it). 0 when a path is longer than its tree's longest (no forest), else 1. */
static int block_leaves(const MisreadModel *m, const double *matrix, const int64_t *index,
                        int rows, Scratch *s) {
    const int32_t nf = m->n_features, nt = m->n_trees;
    int32_t at[BLOCK];
    for (int r = 0; r < rows; ++r)
        for (int32_t f = 0; f < nf; ++f) {
            const double v = matrix[index[r] * nf + f];
            const int code = v >= 0.0 && v < (double)MAX_CODES; /* false for NaN */
            s->shift[r * nf + f] = code ? (int32_t)v : 0;
            s->is_nan[r * nf + f] = (uint8_t)(isnan(v) != 0);
            s->odd_code[r * nf + f] = (uint8_t)(!code && !isnan(v));
        }
    for (int32_t t = 0; t < nt; ++t) {
        for (int r = 0; r < rows; ++r) at[r] = s->root[t];
        for (int32_t d = 0; d < s->depth[t]; ++d)
            for (int r = 0; r < rows; ++r) {
                const PathNode *n = &s->nodes[at[r]];
                const int32_t f = n->feature;
                const double v = matrix[index[r] * nf + f];
                const int by_threshold = v <= n->test.threshold;
                const int by_code = (int)((n->test.codes >> s->shift[r * nf + f]) & 1u);
                const int cat = n->categorical, nan = s->is_nan[r * nf + f];
                int left = (((cat & by_code) | ((!cat) & by_threshold)) & (!nan)) | (nan & n->nan_left);
                if (__builtin_expect(n->general | (cat & s->odd_code[r * nf + f]), 0))
                    left = goes_left(m, at[r], v); /* a split: leaves are never general */
                at[r] = n->child[left];
            }
        for (int r = 0; r < rows; ++r) {
            if (at[r] < m->n_nodes) return 0;
            s->block_leaf[(int64_t)r * nt + t] = at[r] - m->n_nodes;
        }
    }
    return 1;
}

/* A row's nominal codes packed into 64 bits, feature by feature (NaN and any other value as
 * the feature's number of codes), as many features as fit: an order of similar rows. */
static uint64_t code_key(const MisreadModel *m, const double *x) {
    uint64_t key = 0;
    int bits = 0;
    for (int32_t f = 0; f < m->n_features; ++f) {
        const int32_t n_codes = m->n_codes[f];
        if (n_codes <= 0) continue;
        int width = 1;
        while (width < 7 && ((int64_t)1 << width) <= n_codes) ++width;
        if (bits + width > 64) break;
        const double v = x[f];
        const uint64_t code = v >= 0 && v < n_codes ? (uint64_t)v : (uint64_t)n_codes;
        key = (key << width) | code;
        bits += width;
    }
    return key;
}

/* The checks of rows whose code is 0 (edible), with the paths laid out in s; see
 * mushroom_misread_check. */
static int64_t check_rows(const MisreadModel *m, Scratch *s, const double *matrix,
                          int64_t n_rows, int8_t *codes, const int32_t *leaves,
                          int32_t *out_feature, double *out_value) {
    int64_t max_cut = 0;
    for (int32_t f = 0; f < m->n_features; ++f)
        if (m->n_codes[f] == 0 && m->cut_count[f] > max_cut) max_cut = m->cut_count[f];
    Buffers b = {{NULL}, 0, 0};
    const int64_t nf = m->n_features, nt = m->n_trees, nw = m->n_words;
    s->stack_size = (int64_t)m->n_nodes + m->n_leaves + 1;
    s->max_points = 2 * (max_cut + 2);
    s->block_leaf = take(&b, sizeof(int32_t) * BLOCK * nt);
    s->shift = take(&b, sizeof(int32_t) * BLOCK * nf);
    s->is_nan = take(&b, BLOCK * nf);
    s->odd_code = take(&b, BLOCK * nf);
    s->base_leaf = take(&b, sizeof(double) * nt);
    s->bound = take(&b, sizeof(double) * nf);
    s->start_tree = take(&b, sizeof(int32_t) * nt);
    s->start_step = take(&b, sizeof(int32_t) * nt);
    s->prefix = take(&b, sizeof(uint64_t) * (nf + 1) * nw);
    s->suffix = take(&b, sizeof(uint64_t) * (nf + 1) * nw);
    s->other = take(&b, sizeof(uint64_t) * nw);
    s->mask_row = take(&b, sizeof(int64_t) * nf);
    s->stack_node = take(&b, sizeof(int32_t) * s->stack_size);
    s->stack_a = take(&b, sizeof(int64_t) * s->stack_size);
    s->stack_b = take(&b, sizeof(int64_t) * s->stack_size);
    s->points = take(&b, sizeof(double) * s->max_points);
    s->diff = take(&b, sizeof(double) * (s->max_points + 1));
    s->ends = take(&b, sizeof(double) * s->max_points);
    s->known = take(&b, s->max_points);
    int64_t blocked = b.failed ? -1 : 0;
    for (int64_t i = 0; i < n_rows; ++i) {
        out_feature[i] = -1;
        out_value[i] = 0.0;
    }
    /* The edible rows in the order of their nominal codes: rows of a species come together
     * and often share leaves, so the per-leaf tables they read stay in cache (0.97x on the
     * bench batch). Each row's result is its own: the order changes nothing else. */
    int64_t n_edible = 0;
    for (int64_t i = 0; i < n_rows; ++i) n_edible += codes[i] == 0;
    const int64_t room = n_edible > 0 ? n_edible : 1;
    uint64_t *keys = take(&b, sizeof(uint64_t) * room);
    int64_t *row_of = take(&b, sizeof(int64_t) * room);
    int64_t *position = take(&b, sizeof(int64_t) * room);
    int64_t *spare = take(&b, sizeof(int64_t) * room);
    if (b.failed) blocked = -1;
    if (blocked >= 0) {
        int64_t e = 0;
        for (int64_t i = 0; i < n_rows; ++i) {
            if (codes[i] != 0) continue;
            keys[e] = code_key(m, matrix + i * nf);
            row_of[e++] = i;
        }
        sort_rows(position, spare, n_edible, keys, 1);
    }
    int64_t index[BLOCK];
    for (int64_t next = 0; next < n_edible && blocked >= 0;) {
        int rows = 0;
        for (; next < n_edible && rows < BLOCK; ++next) index[rows++] = row_of[position[next]];
        if (leaves != NULL) { /* the predictor's, each checked to be a leaf of its tree */
            for (int r = 0; r < rows && blocked >= 0; ++r)
                for (int32_t t = 0; t < nt; ++t) {
                    const int32_t l = leaves[index[r] * nt + t];
                    if (l < 0 || l >= m->n_leaves || s->leaf_tree[l] != t) {
                        blocked = -1;
                        break;
                    }
                    s->block_leaf[(int64_t)r * nt + t] = l;
                }
        } else if (!block_leaves(m, matrix, index, rows, s)) {
            blocked = -1;
        }
        for (int r = 0; r < rows && blocked >= 0; ++r) {
            const int64_t i = index[r];
            int found = check_row(m, matrix + i * nf, s->block_leaf + (int64_t)r * nt, s,
                                  &out_feature[i], &out_value[i]);
            if (found < 0) {
                blocked = -1;
            } else if (found > 0) {
                codes[i] = 2;
                ++blocked;
            }
        }
    }
    release(&b);
    return blocked;
}

/* Rows whose code is 0 (edible) are checked; a blocked one gets code 2 (unknown) and its
 * variant in out_feature/out_value (out_feature -1 for the others). Returns the number of
 * rows blocked, or -1 when the model is inconsistent (or memory runs out). The paths are laid
 * out for this call (mushroom_misread_check_laid_out takes them from the caller). */
EXPORT int64_t mushroom_misread_check(const MisreadModel *m, const double *matrix,
                                      int64_t n_rows, int32_t n_columns, int8_t *codes,
                                      int32_t *out_feature, double *out_value) {
    if (m == NULL || n_rows < 0 || n_columns != m->n_features || !validate(m)) return -1;
    Scratch s;
    Buffers b = {{NULL}, 0, 0};
    int64_t blocked = lay_out_paths(m, &s, &b) != 1
                          ? -1
                          : check_rows(m, &s, matrix, n_rows, codes, NULL, out_feature,
                                       out_value);
    release(&b);
    return blocked;
}

/* ---- The paths laid out once, by the caller (a bundle's load), in a buffer it keeps. ----
 * The buffer: a LayoutHeader, then the arrays of Scratch that lay_out_paths fills, each at an
 * offset that layout_offsets computes from the counts alone. The header names the counts and
 * two hashes: of the model's arrays it was laid out from, and of the bytes after the header.
 * Each call checks the counts and both hashes (a few hundred kilobytes hashed: tens of
 * microseconds), so a buffer of another model, or changed since, is refused (-1). */
#define LAYOUT_MAGIC 0x3274756f79614c4dULL /* "MLayout2" */

typedef struct {
    uint64_t magic;
    int64_t size; /* bytes, header included */
    int64_t n_steps;
    int32_t n_features, n_trees, n_nodes, n_leaves;
    uint64_t model_hash, body_hash;
} LayoutHeader;

typedef struct {
    int64_t nodes, root, depth, leaf_start, leaf_steps, leaf_tree, step_node, step_left,
        next_same, step_most,
        first_step, gain, size;
} LayoutOffsets;

static int64_t align8(int64_t x) { return (x + 7) & ~(int64_t)7; }

static LayoutOffsets layout_offsets(const MisreadModel *m, int64_t n_steps) {
    const int64_t n_all = (int64_t)m->n_nodes + m->n_leaves, nt = m->n_trees;
    const int64_t nl = m->n_leaves, cells = nl * m->n_features;
    LayoutOffsets o;
    o.nodes = align8((int64_t)sizeof(LayoutHeader));
    o.root = align8(o.nodes + (int64_t)sizeof(PathNode) * n_all);
    o.depth = align8(o.root + 4 * nt);
    o.leaf_start = align8(o.depth + 4 * nt);
    o.leaf_steps = align8(o.leaf_start + 8 * nl);
    o.leaf_tree = align8(o.leaf_steps + 4 * nl);
    o.step_node = align8(o.leaf_tree + 4 * nl);
    o.step_left = align8(o.step_node + 4 * n_steps);
    o.next_same = align8(o.step_left + n_steps);
    o.step_most = align8(o.next_same + 4 * n_steps);
    o.first_step = align8(o.step_most + 8 * n_steps);
    o.gain = align8(o.first_step + 4 * cells);
    o.size = o.gain + 8 * cells;
    return o;
}

/* A 64-bit hash of n bytes (eight multiply-xorshift lanes over 8-byte words: independent
 * chains the CPU overlaps, twice as fast as four on a layout of ~1 MB), from seed. */
#define HASH_LANES 8
static uint64_t hash_bytes(const void *data, int64_t n, uint64_t seed) {
    const unsigned char *p = data;
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h[HASH_LANES];
    for (int j = 0; j < HASH_LANES; ++j) h[j] = (seed + (uint64_t)j) * k ^ (k >> j);
    int64_t i = 0;
    for (; i + 8 * HASH_LANES <= n; i += 8 * HASH_LANES)
        for (int j = 0; j < HASH_LANES; ++j) {
            uint64_t w;
            memcpy(&w, p + i + 8 * j, 8);
            h[j] = (h[j] ^ w) * k;
            h[j] ^= h[j] >> 29;
        }
    uint64_t tail = (uint64_t)n;
    for (; i < n; ++i) tail = (tail ^ p[i]) * k;
    uint64_t out = tail;
    for (int j = 0; j < HASH_LANES; ++j) {
        out = (out ^ h[j]) * k;
        out ^= out >> 31;
    }
    return out;
}

/* The hash of everything of the model a layout is computed from. */
static uint64_t model_hash(const MisreadModel *m) {
    const int64_t nn = m->n_nodes;
    uint64_t h = hash_bytes(m->roots, 4 * (int64_t)m->n_trees, 1);
    h = hash_bytes(m->feature, 4 * nn, h);
    h = hash_bytes(m->left, 4 * nn, h);
    h = hash_bytes(m->right, 4 * nn, h);
    h = hash_bytes(m->cat_start, 4 * nn, h);
    h = hash_bytes(m->cat_words, 4 * nn, h);
    h = hash_bytes(m->threshold, 8 * nn, h);
    h = hash_bytes(m->decision_type, nn, h);
    h = hash_bytes(m->left_codes, 8 * nn, h);
    h = hash_bytes(m->node_max, 8 * nn, h);
    h = hash_bytes(m->leaf_value, 8 * (int64_t)m->n_leaves, h);
    h = hash_bytes(m->cat_bits, 4 * m->n_cat_bits, h);
    return hash_bytes(m->n_codes, 4 * (int64_t)m->n_features, h);
}

/* The size of the model's layout in bytes (for mushroom_misread_layout), or -1 when the model
 * is inconsistent (or memory runs out). */
EXPORT int64_t mushroom_misread_layout_size(const MisreadModel *m) {
    if (m == NULL || !validate(m)) return -1;
    Scratch s;
    Buffers b = {{NULL}, 0, 0};
    int64_t size = lay_out_paths(m, &s, &b) == 1 ? layout_offsets(m, s.n_steps).size : -1;
    release(&b);
    return size;
}

/* Lays the model's paths out into buffer (size bytes, 8-byte aligned: size from
 * mushroom_misread_layout_size). 1 done, -1 refused. */
EXPORT int32_t mushroom_misread_layout(const MisreadModel *m, void *buffer, int64_t size) {
    if (m == NULL || buffer == NULL || ((uintptr_t)buffer & 7) != 0 || !validate(m)) return -1;
    Scratch s;
    Buffers b = {{NULL}, 0, 0};
    int32_t status = -1;
    if (lay_out_paths(m, &s, &b) == 1) {
        const LayoutOffsets o = layout_offsets(m, s.n_steps);
        if (o.size == size) {
            unsigned char *base = buffer;
            const int64_t n_all = (int64_t)m->n_nodes + m->n_leaves, nt = m->n_trees;
            const int64_t nl = m->n_leaves, cells = nl * m->n_features;
            memset(base, 0, (size_t)size); /* alignment gaps too */
            memcpy(base + o.nodes, s.nodes, sizeof(PathNode) * (size_t)n_all);
            memcpy(base + o.root, s.root, 4 * (size_t)nt);
            memcpy(base + o.depth, s.depth, 4 * (size_t)nt);
            memcpy(base + o.leaf_start, s.leaf_start, 8 * (size_t)nl);
            memcpy(base + o.leaf_steps, s.leaf_steps, 4 * (size_t)nl);
            memcpy(base + o.leaf_tree, s.leaf_tree, 4 * (size_t)nl);
            memcpy(base + o.step_node, s.step_node, 4 * (size_t)s.n_steps);
            memcpy(base + o.step_left, s.step_left, (size_t)s.n_steps);
            memcpy(base + o.next_same, s.next_same, 4 * (size_t)s.n_steps);
            memcpy(base + o.step_most, s.step_most, 8 * (size_t)s.n_steps);
            memcpy(base + o.first_step, s.first_step, 4 * (size_t)cells);
            memcpy(base + o.gain, s.gain, 8 * (size_t)cells);
            LayoutHeader h;
            memset(&h, 0, sizeof(h));
            h.magic = LAYOUT_MAGIC;
            h.size = size;
            h.n_steps = s.n_steps;
            h.n_features = m->n_features;
            h.n_trees = m->n_trees;
            h.n_nodes = m->n_nodes;
            h.n_leaves = m->n_leaves;
            h.model_hash = model_hash(m);
            h.body_hash = hash_bytes(base + o.nodes, size - o.nodes, h.model_hash);
            memcpy(base, &h, sizeof(h));
            status = 1;
        }
    }
    release(&b);
    return status;
}

/* The check with a layout, and the rows' leaves when the caller has them (NULL: found here). */
static int64_t check_with_layout(const MisreadModel *m, const void *layout, int64_t size,
                                 const double *matrix, int64_t n_rows, int32_t n_columns,
                                 int8_t *codes, const int32_t *leaves, int32_t *out_feature,
                                 double *out_value) {
    if (m == NULL || n_rows < 0 || n_columns != m->n_features || !validate(m)) return -1;
    LayoutHeader h;
    if (layout == NULL || ((uintptr_t)layout & 7) != 0 || size < (int64_t)sizeof(h)) return -1;
    memcpy(&h, layout, sizeof(h));
    if (h.magic != LAYOUT_MAGIC || h.size != size || h.n_features != m->n_features ||
        h.n_trees != m->n_trees || h.n_nodes != m->n_nodes || h.n_leaves != m->n_leaves ||
        h.n_steps < 0 || h.n_steps > INT32_MAX)
        return -1;
    const LayoutOffsets o = layout_offsets(m, h.n_steps);
    const unsigned char *base = layout;
    if (o.size != size || h.model_hash != model_hash(m) ||
        h.body_hash != hash_bytes(base + o.nodes, size - o.nodes, h.model_hash))
        return -1;
    Scratch s;
    /* Read only: the layout's arrays are never written by a check. */
    s.nodes = (PathNode *)(uintptr_t)(base + o.nodes);
    s.root = (int32_t *)(uintptr_t)(base + o.root);
    s.depth = (int32_t *)(uintptr_t)(base + o.depth);
    s.leaf_start = (int64_t *)(uintptr_t)(base + o.leaf_start);
    s.leaf_steps = (int32_t *)(uintptr_t)(base + o.leaf_steps);
    s.leaf_tree = (int32_t *)(uintptr_t)(base + o.leaf_tree);
    s.step_node = (int32_t *)(uintptr_t)(base + o.step_node);
    s.step_left = (uint8_t *)(uintptr_t)(base + o.step_left);
    s.next_same = (int32_t *)(uintptr_t)(base + o.next_same);
    s.step_most = (double *)(uintptr_t)(base + o.step_most);
    s.first_step = (int32_t *)(uintptr_t)(base + o.first_step);
    s.gain = (double *)(uintptr_t)(base + o.gain);
    s.n_steps = h.n_steps;
    return check_rows(m, &s, matrix, n_rows, codes, leaves, out_feature, out_value);
}

/* mushroom_misread_check with the paths of mushroom_misread_layout (size bytes at layout);
 * -1 also when the layout is not this model's as it was laid out. */
EXPORT int64_t mushroom_misread_check_laid_out(const MisreadModel *m, const void *layout,
                                               int64_t size, const double *matrix,
                                               int64_t n_rows, int32_t n_columns, int8_t *codes,
                                               int32_t *out_feature, double *out_value) {
    return check_with_layout(m, layout, size, matrix, n_rows, n_columns, codes, NULL,
                             out_feature, out_value);
}

/* mushroom_misread_check_laid_out with each row's leaves already found: leaves[i * n_trees +
 * t] is row i's global leaf in tree t, as the compiled predictor records them while it scores
 * the rows (mushroom_predict_batch_leaves), so that the check does not walk the trees again.
 * Each leaf is checked to be one of tree t's (-1 otherwise, and when n_leaf_columns is not the
 * model's number of trees). */
EXPORT int64_t mushroom_misread_check_leaves(const MisreadModel *m, const void *layout,
                                             int64_t size, const double *matrix, int64_t n_rows,
                                             int32_t n_columns, int8_t *codes,
                                             const int32_t *leaves, int32_t n_leaf_columns,
                                             int32_t *out_feature, double *out_value) {
    if (m == NULL || leaves == NULL || n_leaf_columns != m->n_trees) return -1;
    return check_with_layout(m, layout, size, matrix, n_rows, n_columns, codes, leaves,
                             out_feature, out_value);
}
