//! xDS client and control-plane server (not built yet).
