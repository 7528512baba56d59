//! Label and field selectors. (Being written.)
