//! What llmwatch shows and judges, as typed data: the panels of the dashboards (one list for
//! the built-in web dashboard and the exported Grafana ones) and the alerts (one list for the
//! exported rules and `up`'s own evaluation), the way the signal table is one list for the
//! normaliser and the recording rules. Renderers read these; none re-derives a signal.

pub mod alerts;
pub mod gpu_panels;
pub mod panels;

/// Outcomes that spend the availability error budget: the server failed or turned the request
/// away. Client errors and client aborts are not the server's fault.
pub const ERROR_OUTCOMES: [&str; 2] = ["error_server", "rejected_overload"];
