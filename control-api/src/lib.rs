//! xDS for Outrigger: `control_plane` is the file-backed ADS server behind `outrigger control-plane` (it serves
//! Envoy and Outrigger alike). `ads_client` is the proxy's own xDS client.

#![forbid(unsafe_code)]

pub mod ads_client;
pub mod control_plane;
