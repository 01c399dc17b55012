// The helpers are header-only (include/beckon_simd.h); SwiftPM needs one source file.
