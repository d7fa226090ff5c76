//! Every integration test, in one binary: one link instead of one per file, and one shared
//! control plane (`TestCluster::get()`) instead of one per file. Tests that disturb the whole
//! API server (stopping it, counting all its requests, Helm owning the CRDs, a node) get a
//! control plane of their own in this same process with `TestCluster::isolated(NAME)`.
//!
//! A new test file `tests/it/NAME.rs` is one more `mod NAME;` line below; inside it, the shared
//! helpers are `use crate::support;` (or `crate::sim_support`, `crate::chart_support`) instead
//! of `mod support;`. A file left at `tests/NAME.rs` still runs, as a binary of its own.
//!
//! Run a part: `cargo test --test it controller::` (module path filter).

#[path = "../chart/support.rs"]
mod chart_support;
#[path = "../sim_support/mod.rs"]
mod sim_support;
#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod actions;
mod argocd_health;
mod backfill;
mod bad_input;
mod chart;
mod chart_alerts;
mod chart_crds;
mod chart_examples;
mod chart_kubeconform;
mod chart_lifecycle;
mod chart_node;
mod chart_render;
mod chart_upgrade;
mod cloud_http;
mod cloud_sim;
mod cloud_sts;
mod cluster_smoke;
mod controller;
mod crds;
mod dashboard;
mod dashboard_prometheus;
mod demo_view;
mod endpoint_policy;
mod faults;
mod image;
mod keyless;
mod leader_election;
mod namespace_lists;
mod operator_process;
mod order_writes;
mod outage;
mod probe_cli;
mod probe_demo;
mod quiet;
mod receiver;
mod registry;
mod security;
mod served_namespaces;
mod sim_appstack;
mod sim_auth;
mod sim_edas;
mod sim_faults;
mod sim_sae;
mod sim_timeline;
mod watch_gitops;
mod watchset;
mod workflows;
