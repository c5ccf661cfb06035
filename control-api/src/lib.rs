//! xDS for Outrigger: `control_plane` is the file-backed ADS server behind `outrigger control-plane` (it serves
//! Envoy and Outrigger alike). The proxy's own xDS client comes next.

#![forbid(unsafe_code)]

pub mod control_plane;
