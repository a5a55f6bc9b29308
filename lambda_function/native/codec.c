/* The native batch codec of a compiled predictor (lambda_function/native_codec.py).

   Decodes a batch of Kinesis data fields (base64 of one JSON observation each) into the model's
   feature matrix, and encodes the output records of scored observations. Both are shortcuts of
   the Python code, never a second definition of the contracts:

   - the decoder accepts only a strict subset of what lambda_function/schema.py accepts
     (canonical base64; ASCII-only JSON of one flat object, every key a schema field at most
     once, the values the schema allows, numbers without a sign); every other record is marked
     for the Python decoder, which decides and explains. The field names, kinds, vocabularies
     and limits come from Python at load (mushroom_codec_configure), from the schema itself;
   - the encoder fills the variable parts (id, verdict, p_poisonous, sequence number) into the
     constant segments of an output record that Python encoded with msgspec, so the field names,
     order and formatting stay those of service.VerdictRecord.

   Blobs are lists of byte strings, each followed by '\n' (a byte none of the items may hold). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

#if defined(__x86_64__) && !defined(MUSHROOM_NO_AVX2)
#include <immintrin.h>
#define HAVE_AVX2_BASE64 1
#endif
static int have_avx2; /* set at configure time, from the CPU the library runs on */

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "same_name compares 8-byte words as little-endian (x86_64 and arm64 are)"
#endif

#define CODEC_ABI 1
#define MAX_FIELDS 64
#define MAX_NAME 64
#define MAX_NUMBER 64
/* Bytes readable past a decoded record: a key compare loads up to 8 bytes past its end. */
#define RECORD_SLACK (MAX_NAME + 16)
#define KIND_NUMERIC 0
#define KIND_NOMINAL 1
#define KIND_ID 2
/* The rounding of p_poisonous to 4 decimals (numpy's round: rint(p * 10^4) / 10^4). */
#define P_STEPS 10000

static int configured;
static int n_fields, n_columns, id_field, id_max_length;
static int64_t max_record_bytes;
static unsigned char names_quoted[MAX_FIELDS][MAX_NAME + 8];
static int name_lengths[MAX_FIELDS], kinds[MAX_FIELDS], columns[MAX_FIELDS];
static uint64_t required_mask;
static double nominal_values[MAX_FIELDS][256];
static uint8_t nominal_allowed[MAX_FIELDS][256];
static uint32_t base64_bits[4][256];
/* 1 for the bytes a string may hold as they are in the fast path: printable ASCII but " and \ */
static uint8_t plain[256];

EXPORT int32_t mushroom_codec_abi(void) { return CODEC_ABI; }

/* names: n_fields NUL-terminated names; kinds: KIND_*; cols: the matrix column of each field
   (-1 for the id); values/allowed: per field, 256 entries: the matrix value of a one-byte code
   and whether the schema allows that code (nominal fields only). Returns 0, or < 0 when the
   configuration is inconsistent (then nothing is decoded). */
EXPORT int32_t mushroom_codec_configure(int32_t n_fields_, int32_t n_columns_, const char* names_,
                                        const int32_t* kinds_, const int32_t* cols,
                                        const double* values, const uint8_t* allowed,
                                        int32_t id_max_length_, int64_t max_record_bytes_) {
  configured = 0;
  if (n_fields_ < 1 || n_fields_ > MAX_FIELDS || n_columns_ < 1 || id_max_length_ < 1 ||
      max_record_bytes_ < 2)
    return -1;
  uint64_t covered = 0;
  int ids = 0;
  required_mask = 0;
  for (int f = 0; f < n_fields_; ++f) {
    size_t length = strlen(names_);
    if (length == 0 || length >= MAX_NAME) return -2;
    for (size_t k = 0; k < length; ++k)
      if ((unsigned char)names_[k] < 0x20 || names_[k] == '"' || names_[k] == '\\' ||
          (unsigned char)names_[k] > 0x7e)
        return -2;
    memset(names_quoted[f], 0, sizeof names_quoted[f]);
    memcpy(names_quoted[f], names_, length);
    names_quoted[f][length] = '"';
    name_lengths[f] = (int)length;
    names_ += length + 1;
    kinds[f] = kinds_[f];
    columns[f] = cols[f];
    if (kinds[f] == KIND_ID) {
      ++ids;
      id_field = f;
      required_mask |= 1ULL << f;
      continue;
    }
    if (kinds[f] != KIND_NUMERIC && kinds[f] != KIND_NOMINAL) return -3;
    if (cols[f] < 0 || cols[f] >= n_columns_ || (covered >> cols[f] & 1)) return -4;
    covered |= 1ULL << cols[f];
    if (kinds[f] == KIND_NUMERIC) required_mask |= 1ULL << f;
    for (int c = 0; c < 256; ++c) {
      nominal_values[f][c] = values[f * 256 + c];
      nominal_allowed[f][c] = kinds[f] == KIND_NOMINAL && allowed[f * 256 + c] && c >= 0x20 &&
                              c <= 0x7e && c != '"' && c != '\\';
    }
  }
  if (ids != 1 || covered != (n_columns_ == 64 ? ~0ULL : (1ULL << n_columns_) - 1)) return -5;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int c = 0; c < 256; ++c) {
    for (int k = 0; k < 4; ++k) base64_bits[k][c] = 1u << 31;
    plain[c] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
  }
  for (int k = 0; k < 64; ++k)
    for (int position = 0; position < 4; ++position)
      base64_bits[position][(unsigned char)alphabet[k]] = (uint32_t)k << (18 - 6 * position);
#ifdef HAVE_AVX2_BASE64
  __builtin_cpu_init();
  have_avx2 = __builtin_cpu_supports("avx2");
#endif
  n_fields = n_fields_;
  n_columns = n_columns_;
  id_max_length = id_max_length_;
  max_record_bytes = max_record_bytes_;
  configured = 1;
  return 0;
}

#ifdef HAVE_AVX2_BASE64
/* 32 base64 characters -> 24 bytes per step with AVX2 (the algorithm of Wojciech Mula and
   Daniel Lemire, "Faster Base64 Encoding and Decoding Using AVX2 Instructions", as in aklomp's
   base64 library). Returns how many characters it decoded (a multiple of 32, stopping before
   any block with a character outside the alphabet, '=' included); the scalar code does the
   rest and decides. Writes 32 bytes per step: out needs 8 bytes of slack. Only used when the
   CPU has AVX2 (checked at run time: the build targets baseline x86-64). */
__attribute__((target("avx2"))) static int64_t base64_decode_avx2(const unsigned char* text,
                                                                  int64_t length,
                                                                  unsigned char* out) {
  const __m256i lut_lo = _mm256_setr_epi8(
      0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B,
      0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B,
      0x1B, 0x1A);
  const __m256i lut_hi = _mm256_setr_epi8(
      0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
      0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
      0x10, 0x10);
  const __m256i lut_roll = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0,
                                            0, 0, 0, 0);
  const __m256i mask_2f = _mm256_set1_epi8(0x2f);
  const __m256i pack_shuffle =
      _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4,
                       10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i pack_lanes = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);
  int64_t i = 0;
  for (; i + 32 <= length; i += 32, out += 24) {
    __m256i chars = _mm256_loadu_si256((const __m256i*)(text + i));
    const __m256i hi_nibbles = _mm256_and_si256(_mm256_srli_epi32(chars, 4), mask_2f);
    const __m256i lo_nibbles = _mm256_and_si256(chars, mask_2f);
    const __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
    const __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
    if (!_mm256_testz_si256(lo, hi)) break; /* a character outside the alphabet */
    const __m256i eq_2f = _mm256_cmpeq_epi8(chars, mask_2f);
    const __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nibbles));
    chars = _mm256_add_epi8(chars, roll); /* now the 6-bit values */
    const __m256i pairs = _mm256_maddubs_epi16(chars, _mm256_set1_epi32(0x01400140));
    __m256i bytes = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x00011000));
    bytes = _mm256_shuffle_epi8(bytes, pack_shuffle);
    bytes = _mm256_permutevar8x32_epi32(bytes, pack_lanes);
    _mm256_storeu_si256((__m256i*)out, bytes);
  }
  return i;
}
#endif

/* Canonical base64 (padded, no other characters, unused bits zero) into out (which has
   RECORD_SLACK bytes past capacity); the decoded length, or -1. Scalar: four table lookups per
   4 characters, each table holding the character's 6 bits already shifted into place, and bit
   31 for a character outside the alphabet. */
static int64_t base64_decode(const unsigned char* text, int64_t length, unsigned char* out,
                             int64_t capacity) {
  if (length == 0 || length % 4) return -1;
  const int padding = (text[length - 1] == '=') + (text[length - 2] == '=');
  if (padding == 1 && text[length - 2] == '=') return -1;
  const int64_t size = length / 4 * 3 - padding;
  if (size > capacity) return -1;
  const int64_t full = padding ? length - 4 : length; /* groups without padding */
  int64_t i = 0, o = 0;
#ifdef HAVE_AVX2_BASE64
  if (have_avx2) {
    i = base64_decode_avx2(text, full, out);
    o = i / 4 * 3;
  }
#endif
  uint32_t invalid = 0;
  for (; i < full; i += 4) {
    const uint32_t v = base64_bits[0][text[i]] | base64_bits[1][text[i + 1]] |
                       base64_bits[2][text[i + 2]] | base64_bits[3][text[i + 3]];
    invalid |= v;
    out[o] = (unsigned char)(v >> 16);
    out[o + 1] = (unsigned char)(v >> 8);
    out[o + 2] = (unsigned char)v;
    o += 3;
  }
  if (padding) {
    const unsigned char* g = text + full;
    uint32_t v = base64_bits[0][g[0]] | base64_bits[1][g[1]];
    if (padding == 1) v |= base64_bits[2][g[2]];
    invalid |= v;
    if (v & (padding == 2 ? 0xffffu : 0xffu)) return -1; /* unused bits must be zero */
    out[o++] = (unsigned char)(v >> 16);
    if (padding == 1) out[o++] = (unsigned char)(v >> 8);
  }
  return invalid >> 31 ? -1 : o;
}

static const double powers_of_ten[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                         1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline const unsigned char* skip_space(const unsigned char* p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') ++p;
  return p;
}

/* A JSON number without a sign at p, as the correctly rounded double (what Python's json and
   float() give); NULL when it is not one, too long, or not finite. */
static const unsigned char* parse_number(const unsigned char* p, double* value) {
  const unsigned char* start = p;
  uint64_t mantissa = 0;
  int digits = 0, exponent = 0;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    while (is_digit(*p)) {
      if (digits < 19) {
        mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        ++digits;
      } else {
        ++exponent, digits = 99; /* too many digits for the fast path: strtod below */
      }
      ++p;
    }
  } else {
    return NULL;
  }
  if (*p == '.') {
    ++p;
    if (!is_digit(*p)) return NULL;
    while (is_digit(*p)) {
      if (mantissa == 0 && *p == '0') {
        --exponent; /* a leading zero of the fraction: not a significant digit */
      } else if (digits < 19) {
        mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        ++digits;
        --exponent;
      } else {
        digits = 99;
      }
      ++p;
    }
  }
  if (*p == 'e' || *p == 'E') {
    ++p;
    int negative = *p == '-';
    if (*p == '+' || *p == '-') ++p;
    if (!is_digit(*p)) return NULL;
    int e = 0;
    while (is_digit(*p)) {
      if (e < 100000) e = e * 10 + (*p - '0');
      ++p;
    }
    exponent += negative ? -e : e;
  }
  if (p - start > MAX_NUMBER) return NULL; /* Python's int() has a digit limit: let it decide */
  double result;
  if (digits <= 15 && exponent >= -22 && exponent <= 22) {
    /* Exact operands, one correctly rounded operation (Clinger's fast path). */
    result = exponent >= 0 ? (double)mantissa * powers_of_ten[exponent]
                           : (double)mantissa / powers_of_ten[-exponent];
  } else {
    char text[MAX_NUMBER + 1];
    char* end;
    memcpy(text, start, (size_t)(p - start));
    text[p - start] = '\0';
    result = strtod(text, &end);
    if (end != text + (p - start)) return NULL; /* another locale's decimal point: refuse */
  }
  if (!isfinite(result)) return NULL;
  *value = result;
  return p;
}

/* Does the key at p (its closing quote included) spell field's name? 8 bytes at a time: the
   names are stored followed by '"' and zeros (names_quoted), and the record buffer has
   RECORD_SLACK bytes past its end, so the loads stay inside both. */
static inline int same_name(int field, const unsigned char* p) {
  const int length = name_lengths[field] + 1;
  const unsigned char* name = names_quoted[field];
  for (int k = 0; k < length; k += 8) {
    uint64_t a, b;
    memcpy(&a, p + k, 8);
    memcpy(&b, name + k, 8);
    const int left = length - k;
    const uint64_t mask = left >= 8 ? ~0ULL : (1ULL << (8 * left)) - 1; /* little-endian */
    if ((a ^ b) & mask) return 0;
  }
  return 1;
}

/* One record (NUL-terminated at end); 1 when accepted (row and id filled), else 0. */
static int parse_record(const unsigned char* p, const unsigned char* end, double* row,
                        const unsigned char** id, int* id_length) {
  uint64_t seen = 0;
  int guess = 0;
  p = skip_space(p);
  if (*p++ != '{') return 0;
  p = skip_space(p);
  for (;;) {
    if (*p++ != '"') return 0;
    /* Producers send the fields in one order: try the field after the previous one first. */
    int f = -1;
    if (guess < n_fields && same_name(guess, p)) {
      f = guess;
      p += name_lengths[f] + 1;
    } else {
      const unsigned char* key = p;
      while (plain[*p]) ++p;
      if (*p != '"') return 0;
      const int length = (int)(p - key);
      ++p;
      for (int k = 0; f < 0 && k < n_fields; ++k)
        if (name_lengths[k] == length && same_name(k, key)) f = k;
    }
    if (f < 0 || (seen >> f & 1)) return 0; /* unknown or repeated field */
    seen |= 1ULL << f;
    guess = f + 1;
    p = skip_space(p);
    if (*p++ != ':') return 0;
    p = skip_space(p);
    if (kinds[f] == KIND_NUMERIC) {
      p = parse_number(p, &row[columns[f]]);
      if (p == NULL) return 0;
    } else if (kinds[f] == KIND_NOMINAL) {
      if (p[0] == 'n' && p[1] == 'u' && p[2] == 'l' && p[3] == 'l') {
        row[columns[f]] = NAN;
        p += 4;
      } else if (p[0] == '"' && nominal_allowed[f][p[1]] && p[2] == '"') {
        row[columns[f]] = nominal_values[f][p[1]];
        p += 3;
      } else {
        return 0;
      }
    } else {
      if (*p++ != '"') return 0;
      const unsigned char* value = p;
      while (plain[*p]) ++p;
      if (*p != '"') return 0;
      *id = value;
      *id_length = (int)(p - value);
      if (*id_length < 1 || *id_length > id_max_length) return 0;
      ++p;
    }
    p = skip_space(p);
    if (*p == ',') {
      p = skip_space(p + 1);
      continue;
    }
    if (*p++ != '}') return 0;
    break;
  }
  if (skip_space(p) != end || (seen & required_mask) != required_mask) return 0;
  for (int k = 0; k < n_fields; ++k) /* an absent nominal field is not observed: NaN */
    if (kinds[k] == KIND_NOMINAL && !(seen >> k & 1)) row[columns[k]] = NAN;
  return 1;
}

/* texts: the batch's n base64 data fields as a blob. Fills, per record, status (0 accepted:
   its matrix row is set; 1: for the Python decoder) and ids (a blob of n ids, empty for the
   records not accepted). Returns the bytes written to ids, -1 when not configured, -2 when
   texts does not hold n items, -3 when ids_capacity is too small. */
EXPORT int64_t mushroom_decode_batch(const char* texts, int64_t texts_length, int64_t n,
                                     double* matrix, uint8_t* status, char* ids,
                                     int64_t ids_capacity) {
  if (!configured) return -1;
  unsigned char* record = calloc((size_t)max_record_bytes + RECORD_SLACK, 1);
  if (record == NULL) return -1;
  const unsigned char* p = (const unsigned char*)texts;
  const unsigned char* texts_end = p + texts_length;
  int64_t written = 0;
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* item_end = memchr(p, '\n', (size_t)(texts_end - p));
    if (item_end == NULL) {
      free(record);
      return -2;
    }
    const unsigned char* id = NULL;
    int id_length = 0;
    int64_t size = base64_decode(p, item_end - p, record, max_record_bytes);
    int accepted = 0;
    if (size >= 0) {
      record[size] = '\0'; /* a sentinel: no token continues past it */
      accepted = parse_record(record, record + size, matrix + i * n_columns, &id, &id_length);
    }
    status[i] = accepted ? 0 : 1;
    if (written + (accepted ? id_length : 0) + 1 > ids_capacity) {
      free(record);
      return -3;
    }
    if (accepted) {
      memcpy(ids + written, id, (size_t)id_length);
      written += id_length;
    }
    ids[written++] = '\n';
    p = item_end + 1;
  }
  free(record);
  return p == texts_end ? written : -2;
}

static inline int json_safe(const unsigned char* p, const unsigned char* end) {
  for (; p < end; ++p)
    if (!plain[*p]) return 0;
  return 1;
}

static inline char* put(char* out, const char* text, int64_t length) {
  memcpy(out, text, (size_t)length);
  return out + length;
}

static char* verdict_table;
static int64_t verdict_start[4];
static char* probability_table;
static int32_t probability_start[P_STEPS + 2];

/* Splits a blob of count items into starts (count + 1 entries); 0, or -1. */
static int split_blob(const char* blob, int64_t length, int count, int64_t* starts) {
  const char* cursor = blob;
  for (int k = 0; k < count; ++k) {
    const char* stop = memchr(cursor, '\n', (size_t)(blob + length - cursor));
    if (stop == NULL) return -1;
    starts[k] = cursor - blob;
    cursor = stop + 1;
  }
  starts[count] = cursor - blob;
  return cursor == blob + length ? 0 : -1;
}

/* The constant texts of output records: verdict_texts, a blob of the JSON encodings of the 3
   verdicts (edible, poisonous, unknown); probability_texts, of k / 10^4 for k = 0..10^4 (the
   values p_poisonous takes once rounded). Returns 0, or -1. */
EXPORT int32_t mushroom_codec_configure_output(const char* verdict_texts, int64_t verdict_length,
                                               const char* probability_texts,
                                               int64_t probability_length) {
  static int64_t starts[P_STEPS + 2];
  static int64_t verdict_size, probability_size;
  /* The same texts again (another service of the same bundle): nothing is written, so a
     thread encoding meanwhile is not disturbed. Different texts (not expected in one process)
     replace the tables, which must then not be in use; the old ones are not freed. */
  if (verdict_table != NULL && verdict_size == verdict_length &&
      probability_size == probability_length &&
      memcmp(verdict_table, verdict_texts, (size_t)verdict_length) == 0 &&
      memcmp(probability_table, probability_texts, (size_t)probability_length) == 0)
    return 0;
  int64_t new_verdict_start[4];
  if (split_blob(verdict_texts, verdict_length, 3, new_verdict_start) ||
      split_blob(probability_texts, probability_length, P_STEPS + 1, starts) ||
      probability_length > INT32_MAX)
    return -1;
  char* verdicts = malloc((size_t)verdict_length);
  char* probabilities = malloc((size_t)probability_length);
  if (verdicts == NULL || probabilities == NULL) {
    free(verdicts);
    free(probabilities);
    return -1;
  }
  memcpy(verdicts, verdict_texts, (size_t)verdict_length);
  memcpy(probabilities, probability_texts, (size_t)probability_length);
  memcpy(verdict_start, new_verdict_start, sizeof verdict_start);
  verdict_table = verdicts;
  probability_table = probabilities;
  verdict_size = verdict_length;
  probability_size = probability_length;
  for (int k = 0; k <= P_STEPS + 1; ++k) probability_start[k] = (int32_t)starts[k];
  return 0;
}

/* The output records of n scored observations, each followed by '\n', into out.
   ids, sequence_numbers: blobs of n items (written between quotes as they are: each must be
   printable ASCII without '"' or '\\'); verdicts: 0..2 (edible, poisonous, unknown); p:
   P(poisonous), rounded as numpy rounds it to 4 decimals (rint(p * 10^4), then / 10^4) and
   written as its JSON encoding from mushroom_codec_configure_output; segments: a blob of the 5
   constant parts around the id, verdict, p and sequence number. Returns the bytes written; < 0
   when an item is not as described (-2), out is too small (-3) or the output texts are not
   configured (-1): the caller then encodes the batch itself. */
EXPORT int64_t mushroom_encode_scored(int64_t n, const char* ids, int64_t ids_length,
                                      const char* sequence_numbers, int64_t sequence_length,
                                      const int8_t* verdicts, const double* p,
                                      const char* segments, int64_t segments_length, char* out,
                                      int64_t capacity) {
  if (probability_table == NULL || verdict_table == NULL) return -1;
  int64_t segment_start[6];
  if (split_blob(segments, segments_length, 5, segment_start)) return -2;
  int64_t segment_length[5];
  for (int k = 0; k < 5; ++k) segment_length[k] = segment_start[k + 1] - segment_start[k] - 1;
  /* Bytes per record besides the items: the segments, 4 quotes and 1 newline (as many bytes as
     the segments blob, which holds 5 newlines). */
  const int64_t fixed = segment_start[5];
  const unsigned char* id = (const unsigned char*)ids;
  const unsigned char* ids_end = id + ids_length;
  const unsigned char* sequence = (const unsigned char*)sequence_numbers;
  const unsigned char* sequence_end = sequence + sequence_length;
  char* o = out;
  const char* out_end = out + capacity;
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* id_stop = memchr(id, '\n', (size_t)(ids_end - id));
    const unsigned char* sequence_stop =
        id_stop ? memchr(sequence, '\n', (size_t)(sequence_end - sequence)) : NULL;
    if (sequence_stop == NULL || id_stop == id || !json_safe(id, id_stop) ||
        !json_safe(sequence, sequence_stop) || verdicts[i] < 0 || verdicts[i] > 2)
      return -2;
    const double steps = rint(p[i] * P_STEPS);
    if (!(steps >= 0 && steps <= P_STEPS)) return -2; /* NaN or outside [0, 1] */
    const int k = (int)steps, v = verdicts[i];
    const int64_t p_length = probability_start[k + 1] - probability_start[k] - 1;
    const int64_t v_length = verdict_start[v + 1] - verdict_start[v] - 1;
    if (out_end - o < fixed + (id_stop - id) + (sequence_stop - sequence) + v_length + p_length)
      return -3;
    o = put(o, segments + segment_start[0], segment_length[0]);
    *o++ = '"';
    o = put(o, (const char*)id, id_stop - id);
    *o++ = '"';
    o = put(o, segments + segment_start[1], segment_length[1]);
    o = put(o, verdict_table + verdict_start[v], v_length);
    o = put(o, segments + segment_start[2], segment_length[2]);
    o = put(o, probability_table + probability_start[k], p_length);
    o = put(o, segments + segment_start[3], segment_length[3]);
    *o++ = '"';
    o = put(o, (const char*)sequence, sequence_stop - sequence);
    *o++ = '"';
    o = put(o, segments + segment_start[4], segment_length[4]);
    *o++ = '\n';
    id = id_stop + 1;
    sequence = sequence_stop + 1;
  }
  if (id != ids_end || sequence != sequence_end) return -2;
  return o - out;
}

/* --- Scoring: the species guard, rows grouped by species, the trees, the verdict codes ------

   The same results as ModelBundle.score_codes (lambda_function/model.py), which stays the
   definition: per row, the AND of the guard's species masks of its values (a nominal code, or
   the feature's "missing" row; a numeric value's bin among the feature's edges), "unknown"
   when no species is left, else P(poisonous) >= threshold. Rows with the same species mask
   are predicted together (their trees take the same branches); each row's probability does
   not depend on which rows are beside it. */

int32_t mushroom_predict_batch(const double* X, int64_t n_rows, int32_t n_cols, double* out);

#define MAX_WORDS 16
static int guard_configured, guard_columns, guard_words;
static int guard_nominal[MAX_FIELDS];
static int64_t guard_offset[MAX_FIELDS], guard_edge_count[MAX_FIELDS];
static double guard_missing[MAX_FIELDS];
static double* guard_edges[MAX_FIELDS];
static uint64_t* guard_table;
static double guard_threshold;

/* Per column: nominal[j] (1) or numeric (0); offsets[j]: its first row in table; sizes[j]: its
   rows (nominal: codes + 1, the last for missing; numeric: edge_counts[j] + 1 bins); edges:
   the numeric columns' edges, one after the other. table: rows x n_words uint64 masks.
   Returns 0, or < 0. */
EXPORT int32_t mushroom_guard_configure(int32_t n_columns_, int32_t n_words, const int32_t* nominal,
                                        const int64_t* offsets, const int64_t* sizes,
                                        const double* edges, const int64_t* edge_counts,
                                        const uint64_t* table, int64_t table_rows,
                                        double threshold) {
  guard_configured = 0;
  if (n_columns_ < 1 || n_columns_ > MAX_FIELDS || n_words < 1 || n_words > MAX_WORDS) return -1;
  for (int j = 0; j < n_columns_; ++j) {
    if (offsets[j] < 0 || sizes[j] < 1 || offsets[j] + sizes[j] > table_rows) return -2;
    if (!nominal[j] && edge_counts[j] + 1 != sizes[j]) return -3;
  }
  uint64_t* table_copy = malloc((size_t)(table_rows * n_words) * sizeof(uint64_t));
  if (table_copy == NULL) return -1;
  memcpy(table_copy, table, (size_t)(table_rows * n_words) * sizeof(uint64_t));
  for (int j = 0; j < n_columns_; ++j) {
    guard_nominal[j] = nominal[j] != 0;
    guard_offset[j] = offsets[j];
    guard_missing[j] = (double)(sizes[j] - 1);
    guard_edge_count[j] = nominal[j] ? 0 : edge_counts[j];
    free(guard_edges[j]); /* configured once per library (bundle) in practice */
    guard_edges[j] = NULL;
    if (!nominal[j]) {
      guard_edges[j] = malloc((size_t)(edge_counts[j] + 1) * sizeof(double));
      if (guard_edges[j] == NULL) return -1;
      memcpy(guard_edges[j], edges, (size_t)edge_counts[j] * sizeof(double));
      edges += edge_counts[j];
    }
  }
  guard_table = table_copy; /* an earlier table is not freed: a thread may still read it */
  guard_columns = n_columns_;
  guard_words = n_words;
  guard_threshold = threshold;
  guard_configured = 1;
  return 0;
}

/* Row i's mask before row k's: the last word first (np.lexsort's order), then the row. */
static inline int mask_before(const uint64_t* masks, int words, int64_t i, int64_t k) {
  for (int w = words - 1; w >= 0; --w) {
    const uint64_t x = masks[i * words + w], y = masks[k * words + w];
    if (x != y) return x < y;
  }
  return i < k;
}

/* Sorts order (n row indices) by mask_before: a bottom-up merge sort through scratch, with
   its context as arguments (qsort has none, and qsort_r differs between platforms). */
static void sort_by_mask(int64_t* order, int64_t* scratch, int64_t n, const uint64_t* masks,
                         int words) {
  int64_t* from = order;
  int64_t* to = scratch;
  for (int64_t width = 1; width < n; width *= 2) {
    for (int64_t start = 0; start < n; start += 2 * width) {
      const int64_t middle = start + width < n ? start + width : n;
      const int64_t end = start + 2 * width < n ? start + 2 * width : n;
      int64_t a = start, b = middle, o = start;
      while (a < middle && b < end)
        to[o++] = mask_before(masks, words, from[b], from[a]) ? from[b++] : from[a++];
      while (a < middle) to[o++] = from[a++];
      while (b < end) to[o++] = from[b++];
    }
    int64_t* swap = from;
    from = to;
    to = swap;
  }
  if (from != order) memcpy(order, from, (size_t)n * sizeof(int64_t));
}

/* numpy's searchsorted(edges, x, side="right"): how many edges are <= x; NaN sorts last. */
static inline int64_t bin_of(const double* edges, int64_t count, double x) {
  if (isnan(x)) return count;
  int64_t low = 0, high = count;
  while (low < high) {
    const int64_t middle = (low + high) / 2;
    if (edges[middle] <= x)
      low = middle + 1;
    else
      high = middle;
  }
  return low;
}

/* P(poisonous) and verdict codes (0 edible, 1 poisonous, 2 unknown) of n rows of X (C order,
   guard_columns each). Returns 0, or < 0 (not configured, no memory, predictor refused). */
EXPORT int32_t mushroom_score_batch(const double* X, int64_t n, double* p, int8_t* codes) {
  if (!guard_configured) return -1;
  if (n == 0) return 0;
  const int W = guard_words, C = guard_columns;
  uint64_t* masks = malloc((size_t)(n * W) * sizeof(uint64_t));
  int64_t* order = malloc((size_t)n * sizeof(int64_t));
  int64_t* scratch = malloc((size_t)n * sizeof(int64_t));
  double* grouped = malloc((size_t)(n * C) * sizeof(double));
  double* grouped_p = malloc((size_t)n * sizeof(double));
  int32_t status = -1;
  if (masks && order && scratch && grouped && grouped_p) {
    for (int64_t i = 0; i < n; ++i) {
      const double* x = X + i * C;
      uint64_t* m = masks + i * W;
      for (int w = 0; w < W; ++w) m[w] = ~0ULL;
      for (int j = 0; j < C; ++j) {
        int64_t row;
        if (guard_nominal[j])
          row = (int64_t)(fmin(x[j], guard_missing[j]) + (double)guard_offset[j]);
        else
          row = bin_of(guard_edges[j], guard_edge_count[j], x[j]) + guard_offset[j];
        const uint64_t* t = guard_table + row * W;
        for (int w = 0; w < W; ++w) m[w] &= t[w];
      }
    }
    /* Rows in the order of their species masks, the last word first, as np.lexsort orders
       them: rows of one mask together, and masks that share species near each other. */
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    sort_by_mask(order, scratch, n, masks, W);
    for (int64_t k = 0; k < n; ++k) memcpy(grouped + k * C, X + order[k] * C, (size_t)C * sizeof(double));
    status = mushroom_predict_batch(grouped, n, C, grouped_p) == 0 ? 0 : -3;
    if (status == 0) {
      for (int64_t k = 0; k < n; ++k) p[order[k]] = grouped_p[k];
      for (int64_t i = 0; i < n; ++i) {
        uint64_t any = 0;
        for (int w = 0; w < W; ++w) any |= masks[i * W + w];
        codes[i] = any ? (int8_t)(p[i] >= guard_threshold) : 2;
      }
    }
  }
  free(masks);
  free(order);
  free(scratch);
  free(grouped);
  free(grouped_p);
  return status;
}
