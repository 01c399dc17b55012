// Vector helpers Swift inlines (Swift's own SIMD comparisons are not lowered to vector
// instructions by this toolchain): the decoder's string scan, and for the engine a cache
// prefetch hint and the intent scores' logistic function; for the compact form, UUID packing.
// Header-only: every function is static inline.
#ifndef BECKON_SIMD_H
#define BECKON_SIMD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
// glibc declares `mremap` only with _GNU_SOURCE, which a module's header cannot count on
// coming first: declared here as glibc does (1 is MREMAP_MAYMOVE on every Linux target).
extern void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);
#define BECKON_MREMAP_MAYMOVE 1
#define BECKON_MREMAP_FIXED 2
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

/// One bit per byte of the 16 at `p` (bit i for byte i) that is a quote, a backslash,
/// a control character (< 0x20) or not ASCII (>= 0x80): the bytes a JSON string scan
/// must look at. `p` need not be aligned; all 16 bytes must be readable.
static inline uint32_t beckon_string_specials16(const void *p) {
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    // Signed compare: bytes >= 0x80 are negative, so "< 0x20" also flags them.
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low));
#elif defined(__ARM_NEON)
    uint8x16_t v = vld1q_u8((const uint8_t *)p);
    uint8x16_t m = vorrq_u8(vorrq_u8(vceqq_u8(v, vdupq_n_u8('"')), vceqq_u8(v, vdupq_n_u8('\\'))),
                            vorrq_u8(vcltq_u8(v, vdupq_n_u8(0x20)), vcgeq_u8(v, vdupq_n_u8(0x80))));
    static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint8x16_t bits = vandq_u8(m, vld1q_u8(weights));
    return (uint32_t)vaddv_u8(vget_low_u8(bits)) | (uint32_t)vaddv_u8(vget_high_u8(bits)) << 8;
#else
    const uint8_t *b = (const uint8_t *)p;
    uint32_t mask = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t c = b[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) mask |= 1u << i;
    }
    return mask;
#endif
}

/// Asks the CPU to start loading the `bytes` at `p` into cache, for writing soon (a hint:
/// no effect on results). The visitor states of a million visitors do not fit in cache,
/// so the engine announces the next state it will touch while it works on the current one.
static inline void beckon_prefetch(const void *p, size_t bytes) {
    // Every 64-byte line the bytes touch: stepping from `p` itself missed the last line
    // when `p` was not on a line boundary (a held event of 112 bytes spans three lines).
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + bytes;
    for (; line < end; line += 64) {
        __builtin_prefetch((const void *)line, 1, 3);
    }
}

/// Asks the kernel to back the whole 2 MB pages inside the `bytes` at `p` with huge pages
/// (a hint: no effect on results, none where there are no transparent huge pages). A
/// million visitors' states, slots and index span hundreds of megabytes that the engine
/// reads at random: with 4 KB pages nearly every visitor looked up misses the TLB too,
/// and each new page costs a fault.
static inline void beckon_advise_huge_pages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (end > start) (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p; (void)bytes;
#endif
}

static inline void beckon_advise_region(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // The whole mapping, not only its whole 2 MB pages (as `beckon_advise_huge_pages`
    // does): advice on part of a mapping splits it, and `mremap` cannot move a range that
    // spans more than one (EFAULT).
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#else
    (void)p; (void)bytes;
#endif
}

#if defined(__linux__)
static const size_t beckon_huge_page = (size_t)2 << 20;

/// The bytes a region asked for `bytes` spans: whole pages, and whole 2 MB pages from 2 MB on.
static inline size_t beckon_region_span(size_t bytes) {
    size_t unit = bytes >= beckon_huge_page ? beckon_huge_page : 4096;
    return (bytes + unit - 1) & ~(unit - 1);
}

/// `span` bytes of address space on a 2 MB boundary (inaccessible until `mremap` moves a
/// region there or `mprotect` opens it); NULL when there is none.
static inline void *beckon_reserve_aligned(size_t span) {
    char *p = mmap(NULL, span + beckon_huge_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *start = (char *)(((uintptr_t)p + beckon_huge_page - 1) & ~(uintptr_t)(beckon_huge_page - 1));
    if (start > p) (void)munmap(p, (size_t)(start - p));
    char *end = start + span, *mapped_end = p + span + beckon_huge_page;
    if (mapped_end > end) (void)munmap(end, (size_t)(mapped_end - end));
    return start;
}
#endif

/// A buffer of its own pages, for the hot visitor states, which grow by doubling to
/// hundreds of megabytes: on Linux a mapping of its own, which `beckon_region_resize`
/// grows or shrinks by moving page tables (`mremap`), so that growing copies nothing and
/// touches no new page for the states already in it. Copied into a new buffer instead, a
/// growth faulted in as many fresh pages as the states it moved: at 1,000,000 visitors
/// those faults were 9 % of the core's time. Page aligned (64 bytes elsewhere). NULL when
/// the memory is not there.
///
/// From 2 MB on, the region is a whole number of 2 MB pages starting on a 2 MB boundary,
/// with huge pages advised, and it keeps that alignment when it moves. The kernel backs a
/// 2 MB range with a huge page only when the whole aligned range lies in the mapping, and
/// `mremap` moves huge pages whole only between aligned addresses. Unaligned, the
/// region grew and shrank with the freezes onto mostly 4 KB pages (6 of 14 MB huge, seen
/// in /proc/PID/smaps at 100,000 visitors), so that most visitor states looked up at
/// random missed the TLB as well as the cache.
static inline void *beckon_region_allocate(size_t bytes) {
#if defined(__linux__)
    size_t span = beckon_region_span(bytes);
    void *p;
    if (span >= beckon_huge_page) {
        p = beckon_reserve_aligned(span);
        if (p == NULL || mprotect(p, span, PROT_READ | PROT_WRITE) != 0) {
            if (p != NULL) (void)munmap(p, span);
            return NULL;
        }
    } else {
        p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    }
    beckon_advise_region(p, span);
    return p;
#else
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
#endif
}

/// The region `p` of `old_bytes`, now of `new_bytes`, its first min(old, new) bytes kept
/// (possibly at another address, which it returns); NULL, and `p` untouched, when the
/// memory is not there.
static inline void *beckon_region_resize(void *p, size_t old_bytes, size_t new_bytes) {
#if defined(__linux__)
    size_t old_span = beckon_region_span(old_bytes), new_span = beckon_region_span(new_bytes);
    if (new_span == old_span) return p;
    // In place when the addresses after it are free (always, to shrink), unless it is
    // to span 2 MB pages and does not start on one.
    int aligned = ((uintptr_t)p & (beckon_huge_page - 1)) == 0;
    void *q = aligned || new_span < beckon_huge_page ? mremap(p, old_span, new_span, 0) : MAP_FAILED;
    if (q == MAP_FAILED) {
        if (new_span >= beckon_huge_page) {
            // Moved onto address space reserved on a 2 MB boundary (which it replaces).
            void *to = beckon_reserve_aligned(new_span);
            if (to == NULL) return NULL;
            q = mremap(p, old_span, new_span, BECKON_MREMAP_MAYMOVE | BECKON_MREMAP_FIXED, to);
            if (q == MAP_FAILED) { (void)munmap(to, new_span); return NULL; }
        } else {
            q = mremap(p, old_span, new_span, BECKON_MREMAP_MAYMOVE);
            if (q == MAP_FAILED) return NULL;
        }
    }
    beckon_advise_region(q, new_span);
    return q;
#else
    void *q = beckon_region_allocate(new_bytes);
    if (q == NULL) return NULL;
    memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
    free(p);
    return q;
#endif
}

/// Gives back the region `p` of `bytes`.
static inline void beckon_region_free(void *p, size_t bytes) {
#if defined(__linux__)
    (void)munmap(p, beckon_region_span(bytes));
#else
    (void)bytes;
    free(p);
#endif
}

typedef float beckon_float8 __attribute__((ext_vector_type(8)));
typedef double beckon_double8 __attribute__((ext_vector_type(8)));
typedef int32_t beckon_int8 __attribute__((ext_vector_type(8)));

/// The logistic function 1 / (1 + e^-z) of the first `count` (at most 8) sums at `z`, as
/// floats into `out`; the places from `count` on get 0. All eight lanes at once, in vector
/// instructions (two per step with SSE2), in place of a call to `expf` per intent.
///
/// e^x is 2^n × e^r with n = x / ln 2 rounded and |r| <= ln 2 / 2, and e^r its Taylor
/// polynomial to the 6th power (truncation error below 1.2 × 10^-7 relative, so below
/// 3 × 10^-8 in a score, which moves by at most a quarter of e^x's error). x is clamped to
/// ±87, so that 2^n stays a normal float: a score is never exactly 0 (a stored score
/// of 0 means "not computed"). Within 1.2 × 10^-7 of the exact value, rounding included
/// (`theVectorLogisticIsTheLogistic`); the same bits on every machine, as it uses no
/// library function.
static inline void beckon_logistic8(const double *z, long count, float *out) {
    // No fused multiply-adds where the machine has them: the same bits everywhere.
#pragma clang fp contract(off)
    beckon_double8 zd;
    memcpy(&zd, z, sizeof zd);
    beckon_float8 x = -__builtin_convertvector(zd, beckon_float8);
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, (beckon_float8)(-87.0f)), (beckon_float8)(87.0f));
    // Round to nearest by adding and subtracting 1.5 × 2^23 (SSE2 has no rounding instruction).
    const float shifter = 12582912.0f;
    beckon_float8 n = (x * 1.44269504088896341f + shifter) - shifter;
    // ln 2 in two parts, the first with 16 significant bits, so that n × hi is exact.
    beckon_float8 r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    beckon_float8 p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    beckon_int8 bits = (__builtin_convertvector(n, beckon_int8) + 127) << 23;
    beckon_float8 scale;
    memcpy(&scale, &bits, sizeof scale);
    beckon_float8 s = 1.0f / (1.0f + p * scale);
    beckon_int8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    beckon_int8 keep = lane < (beckon_int8)(int32_t)count;
    beckon_int8 result;
    memcpy(&result, &s, sizeof result);
    result &= keep;
    memcpy(out, &result, sizeof result);
}

/// A bit per place i < `count` (at most 64) of `v` whose value is not 0: bit i for v[i].
/// NaN counts as not 0. Two places per vector compare with SSE2.
static inline uint64_t beckon_nonzero_mask(const double *v, long count) {
    uint64_t mask = 0;
    long i = 0;
#if defined(__SSE2__)
    const __m128d zero = _mm_setzero_pd();
    for (; i + 2 <= count; i += 2) {
        mask |= (uint64_t)_mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(v + i), zero)) << i;
    }
#endif
    for (; i < count; i++) {
        if (v[i] != 0) mask |= (uint64_t)1 << i;
    }
    return mask;
}

#if !defined(__SSE2__)
/// Per byte: its value as a hex digit, | 0x10 for a lower case letter, | 0x20 for an upper
/// case one; 0x40 for a byte that is no hex digit.
static const uint8_t beckon_hex_digit[256] = {
#define X 0x40
#define X16 X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X
    X16, X16, X16,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, X, X, X, X, X, X,
    X, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, X, X, X, X, X, X, X, X, X, X16,
    X, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, X, X, X, X, X, X, X, X, X, X16,
    X16, X16, X16, X16, X16, X16, X16, X16
#undef X16
#undef X
};

/// Where the 16 pairs of hex digits of a UUID's 36 characters start.
static const uint8_t beckon_uuid_pairs[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
#endif

#if defined(__SSE2__)
/// The values of 16 hex digits; the bytes that are lower case letters, upper case letters,
/// or no hex digit are added to the three masks (one bit per byte).
static inline __m128i beckon_hex16(__m128i v, unsigned *lower, unsigned *upper, unsigned *other) {
    // Signed byte comparisons: x - base in [0, n) exactly when v is in [base, base + n).
    __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    __m128i l = _mm_sub_epi8(v, _mm_set1_epi8('a'));
    __m128i u = _mm_sub_epi8(v, _mm_set1_epi8('A'));
    __m128i none = _mm_set1_epi8(-1);
    __m128i isDigit = _mm_and_si128(_mm_cmpgt_epi8(d, none), _mm_cmplt_epi8(d, _mm_set1_epi8(10)));
    __m128i isLower = _mm_and_si128(_mm_cmpgt_epi8(l, none), _mm_cmplt_epi8(l, _mm_set1_epi8(6)));
    __m128i isUpper = _mm_and_si128(_mm_cmpgt_epi8(u, none), _mm_cmplt_epi8(u, _mm_set1_epi8(6)));
    *lower |= (unsigned)_mm_movemask_epi8(isLower);
    *upper |= (unsigned)_mm_movemask_epi8(isUpper);
    *other |= 0xFFFFu & ~(unsigned)_mm_movemask_epi8(_mm_or_si128(isDigit, _mm_or_si128(isLower, isUpper)));
    __m128i ten = _mm_set1_epi8(10);
    return _mm_or_si128(_mm_and_si128(d, isDigit),
                        _mm_or_si128(_mm_and_si128(_mm_add_epi8(l, ten), isLower), _mm_and_si128(_mm_add_epi8(u, ten), isUpper)));
}

/// Pairs of digit values (high, low), 16 of them, as 8 bytes `high << 4 | low`, in 16-bit lanes.
static inline __m128i beckon_hex_pairs(__m128i v) {
    return _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x00FF)), 4), _mm_srli_epi16(v, 8));
}
#endif

/// Packs the 36 characters at `text` into 16 bytes at `out` when they are a UUID in
/// canonical form (8-4-4-4-12 hex digits, the letters all lower or all upper case), and
/// returns 1 (lower case letters, or none) or 3 (upper case); otherwise returns 0, and
/// `out` holds anything.
static inline uint8_t beckon_uuid_pack(const uint8_t *text, uint8_t *out) {
    if (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') return 0;
    unsigned lower = 0, upper = 0, other = 0;
#if defined(__SSE2__)
    // The 32 digits side by side, then 16 at a time: with UUID ids, 27 instructions per
    // event (two UUIDs per freeze), where a table lookup per digit took 61.
    uint8_t digits[32];
    memcpy(digits, text, 8);
    memcpy(digits + 8, text + 9, 4);
    memcpy(digits + 12, text + 14, 4);
    memcpy(digits + 16, text + 19, 4);
    memcpy(digits + 20, text + 24, 12);
    __m128i a = beckon_hex16(_mm_loadu_si128((const __m128i *)digits), &lower, &upper, &other);
    __m128i b = beckon_hex16(_mm_loadu_si128((const __m128i *)(digits + 16)), &lower, &upper, &other);
    _mm_storeu_si128((__m128i *)out, _mm_packus_epi16(beckon_hex_pairs(a), beckon_hex_pairs(b)));
#else
    for (int k = 0; k < 16; k++) {
        uint8_t high = beckon_hex_digit[text[beckon_uuid_pairs[k]]], low = beckon_hex_digit[text[beckon_uuid_pairs[k] + 1]];
        lower |= (high | low) & 0x10;
        upper |= (high | low) & 0x20;
        other |= (high | low) & 0x40;
        out[k] = (uint8_t)(high << 4 | (low & 15));
    }
#endif
    if (other || (lower && upper)) return 0;  // mixed case stays text, to read back as it came
    return upper ? 3 : 1;
}

/// Writes the 36 characters that `beckon_uuid_pack` read into `text` (`marker` is what it returned).
static inline void beckon_uuid_unpack(const uint8_t *bytes, uint8_t marker, uint8_t *text) {
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)bytes);
    __m128i nibble = _mm_set1_epi8(15);
    __m128i high = _mm_and_si128(_mm_srli_epi16(v, 4), nibble), low = _mm_and_si128(v, nibble);
    // Per digit: '0' + n, and past 9 the distance from '9' + 1 to the first letter.
    __m128i letters = _mm_set1_epi8((char)((marker == 3 ? 'A' : 'a') - '0' - 10));
    __m128i nine = _mm_set1_epi8(9), zero = _mm_set1_epi8('0');
    __m128i a = _mm_unpacklo_epi8(high, low), b = _mm_unpackhi_epi8(high, low);
    a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), letters));
    b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), letters));
    uint8_t digits[32];
    _mm_storeu_si128((__m128i *)digits, a);
    _mm_storeu_si128((__m128i *)(digits + 16), b);
    memcpy(text, digits, 8);
    memcpy(text + 9, digits + 8, 4);
    memcpy(text + 14, digits + 12, 4);
    memcpy(text + 19, digits + 16, 4);
    memcpy(text + 24, digits + 20, 12);
#else
    const char *digits = marker == 3 ? "0123456789ABCDEF" : "0123456789abcdef";
    for (int k = 0; k < 16; k++) {
        text[beckon_uuid_pairs[k]] = (uint8_t)digits[bytes[k] >> 4];
        text[beckon_uuid_pairs[k] + 1] = (uint8_t)digits[bytes[k] & 15];
    }
#endif
    text[8] = text[13] = text[18] = text[23] = '-';
}

#endif
