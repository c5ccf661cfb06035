//! The data path (not built yet).
